//! Trunk peers' shared state: limits, calls in progress, health.
//!
//! One [`PeerTable`] per process, built from the configuration and handed
//! (as an `Arc`) to every call-layer shard and to the HTTP API. Each peer
//! keeps, in atomics and a small mutex of its own:
//!
//! - calls in progress, inbound and outbound counted apart, against
//!   `max_calls_in` / `max_calls_out`; a call holds a [`PeerCall`] slot
//!   that gives its place back when dropped (with the leg that held it);
//! - new calls per second against `max_cps_in` / `max_cps_out`: a token
//!   bucket per direction that holds one second's worth and refills in
//!   virtual time (`now` comes in; no clock is read);
//! - refusals per limit, and totals admitted and placed;
//! - up or down, from OPTIONS pings (`pings` sends them): a peer is down
//!   after `ping_failures_before_down` failed pings in a row and up again
//!   after `ping_successes_before_up` answered ones; a peer never pinged is
//!   always up. Any answer to a ping but 408 and 503 counts as alive (as
//!   FreeSWITCH's gateway pings and Kamailio's dispatcher with
//!   `ds_ping_reply_codes = "class=2;class=3;class=4;class=5;class=6"`):
//!   a peer that answers is reachable, whatever it thinks of OPTIONS; a 503
//!   says it is not taking requests, and 408 that it could not answer.
//!   No answer (before the next ping is due, or Timer F) or a transport
//!   error is a failure;
//! - the last ping's result and the last call that failed on it (408, 503
//!   or a transport error), for the API.
//!
//! Sans-IO like the rest of the call layer: this module sends nothing and
//! reads no clock; wall-clock times arrive as milliseconds for display.
//! It is shareable across endpoint workers: counters are atomics, buckets
//! and health sit behind one mutex per peer, held for a few instructions.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::settings::CallSettings;
use crate::net::ProfileId;

/// Which way a call goes, as seen from the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer calls the switch.
    In,
    /// The switch calls the peer.
    Out,
}

/// A limit that refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    CallsIn,
    CallsOut,
    CpsIn,
    CpsOut,
}

impl Limit {
    /// The reason phrase of the 503 that refuses a call by this limit.
    pub fn reason(self) -> &'static str {
        match self {
            Limit::CallsIn | Limit::CallsOut => "Peer Call Limit Reached",
            Limit::CpsIn | Limit::CpsOut => "Peer Call Rate Exceeded",
        }
    }
}

/// One value per direction, chosen by a match rather than an array index
/// (which the type could not prove in range).
#[derive(Debug, Default)]
struct ByDirection<T> {
    inbound: T,
    outbound: T,
}

impl<T> ByDirection<T> {
    fn get(&self, d: Direction) -> &T {
        match d {
            Direction::In => &self.inbound,
            Direction::Out => &self.outbound,
        }
    }

    fn get_mut(&mut self, d: Direction) -> &mut T {
        match d {
            Direction::In => &mut self.inbound,
            Direction::Out => &mut self.outbound,
        }
    }
}

/// Refusals counted per limit.
#[derive(Debug, Default)]
struct ByLimit {
    calls_in: AtomicU64,
    calls_out: AtomicU64,
    cps_in: AtomicU64,
    cps_out: AtomicU64,
}

impl ByLimit {
    fn get(&self, l: Limit) -> &AtomicU64 {
        match l {
            Limit::CallsIn => &self.calls_in,
            Limit::CallsOut => &self.calls_out,
            Limit::CpsIn => &self.cps_in,
            Limit::CpsOut => &self.cps_out,
        }
    }
}

/// One second's worth of calls, refilled continuously in virtual time.
/// Amounts are in thousandths of a call so that refills stay exact.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Calls per second; 0: no limit.
    rate: u32,
    milli: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(rate: u32) -> Self {
        TokenBucket {
            rate,
            milli: u64::from(rate) * 1000,
            last: None,
        }
    }

    /// Takes one call's token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let full = u64::from(self.rate) * 1000;
        if let Some(last) = self.last {
            // `now` may lag `last` slightly between workers: no refill then.
            let elapsed = now.saturating_duration_since(last);
            let add = elapsed.as_micros() * u128::from(self.rate) / 1000;
            self.milli = (u128::from(self.milli) + add).min(u128::from(full)) as u64;
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// A peer's limits (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeerLimits {
    pub max_calls_in: u32,
    pub max_calls_out: u32,
    pub max_cps_in: u32,
    pub max_cps_out: u32,
}

/// When a peer is pinged and how its state follows the pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingPolicy {
    /// `None`: no pings.
    pub interval: Option<Duration>,
    pub failures_before_down: u32,
    pub successes_before_up: u32,
}

/// What one ping came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingOutcome {
    /// A final response: alive unless 408 or 503.
    Answered(u16),
    /// No answer before the next ping was due (or Timer F).
    Timeout,
    /// It could not be sent, or the transport failed.
    TransportError,
    /// The peer's name resolved to no address: nowhere to send it.
    NoTarget,
}

impl PingOutcome {
    pub fn alive(&self) -> bool {
        matches!(self, PingOutcome::Answered(code) if *code != 408 && *code != 503)
    }

    fn status(&self) -> Option<u16> {
        match self {
            PingOutcome::Answered(c) => Some(*c),
            _ => None,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            PingOutcome::Answered(_) if self.alive() => "answered",
            PingOutcome::Answered(_) => "refused",
            PingOutcome::Timeout => "timeout",
            PingOutcome::TransportError => "transport-error",
            PingOutcome::NoTarget => "no-target",
        }
    }
}

/// A peer went down or came back up (one `event peer-down` / `peer-up` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEvent {
    pub peer: String,
    pub up: bool,
    /// Pings in a row that decided it.
    pub pings: u32,
    /// The deciding ping: `answered`, `refused` (408/503), `timeout`,
    /// `transport-error`, `no-target`.
    pub last: &'static str,
    pub status: Option<u16>,
}

impl std::fmt::Display for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.up { "peer-up" } else { "peer-down" };
        write!(
            f,
            "{name} peer={} pings={} last={}",
            self.peer, self.pings, self.last
        )?;
        if let Some(s) = self.status {
            write!(f, " status={s}")?;
        }
        Ok(())
    }
}

/// The last ping's result, for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PingResult {
    /// Whether it counted as alive.
    pub ok: bool,
    /// `answered`, `refused` (408/503), `timeout`, `transport-error`, `no-target`.
    pub result: String,
    /// The response's status, if one came.
    pub status: Option<u16>,
    /// When the result was known (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A call that failed on the peer (408, 503 or a transport error, once
/// every server of the peer had been tried), for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallFailure {
    /// 408 (no answer in time) or 503 (refused, or a transport error).
    pub status: u16,
    /// ms since the Unix epoch.
    pub at_ms: u64,
}

/// Refusals since start, per limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Refusals {
    pub calls_in: u64,
    pub calls_out: u64,
    pub cps_in: u64,
    pub cps_out: u64,
}

/// One peer as `GET /v1/peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    pub name: String,
    pub profile: String,
    /// As configured (`None` for a peer that only calls in).
    pub address: Option<String>,
    /// `up` or `down`; a peer that is not pinged is always `up`.
    #[schema(example = "up")]
    pub state: String,
    /// Seconds between pings; 0: not pinged.
    pub ping_interval_secs: u64,
    pub last_ping: Option<PingResult>,
    /// When the state last changed (ms since the Unix epoch), if it has.
    pub state_changed_at_ms: Option<u64>,
    /// Calls in progress from the peer.
    pub calls_in: u32,
    /// Calls in progress to the peer.
    pub calls_out: u32,
    /// Calls admitted from the peer since start.
    pub total_in: u64,
    /// Calls placed to the peer since start.
    pub total_out: u64,
    pub limits: PeerLimits,
    pub refused: Refusals,
    pub last_failure: Option<CallFailure>,
}

#[derive(Debug, Default)]
struct Health {
    ok_in_a_row: u32,
    failed_in_a_row: u32,
    last_ping: Option<PingResult>,
    changed_at_ms: Option<u64>,
    last_failure: Option<CallFailure>,
}

/// Per-peer mutable state behind its own mutex.
#[derive(Debug)]
struct Guarded {
    buckets: ByDirection<TokenBucket>,
    health: Health,
    /// The stream connection the peer's INVITEs last came on (`flows.rs`):
    /// here, not in one worker's call layer, so that a call toward the peer
    /// placed by any worker reuses it.
    flow: Option<(crate::net::TransportKind, crate::net::ConnectionId)>,
}

#[derive(Debug)]
struct PeerState {
    name: String,
    profile: String,
    address: Option<String>,
    limits: PeerLimits,
    ping: PingPolicy,
    /// ACL sources (inbound) and targets (outbound) in progress.
    calls: ByDirection<AtomicU32>,
    totals: ByDirection<AtomicU64>,
    refused: ByLimit,
    up: AtomicBool,
    guarded: Mutex<Guarded>,
}

impl PeerState {
    fn lock(&self) -> MutexGuard<'_, Guarded> {
        // A panic while holding it leaves counters that are still usable.
        self.guarded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every profile's peers, in configuration order.
#[derive(Debug, Default)]
pub struct PeerTable {
    profiles: Vec<Vec<PeerState>>,
}

impl PeerTable {
    pub fn new(settings: &CallSettings) -> Self {
        let profiles = settings
            .profiles
            .iter()
            .map(|ps| {
                ps.peers
                    .iter()
                    .map(|p| PeerState {
                        name: p.name.clone(),
                        profile: ps.name.clone(),
                        address: p.configured_address.clone(),
                        limits: p.limits,
                        ping: p.ping,
                        calls: Default::default(),
                        totals: Default::default(),
                        refused: Default::default(),
                        up: AtomicBool::new(true),
                        guarded: Mutex::new(Guarded {
                            buckets: ByDirection {
                                inbound: TokenBucket::new(p.limits.max_cps_in),
                                outbound: TokenBucket::new(p.limits.max_cps_out),
                            },
                            health: Health::default(),
                            flow: None,
                        }),
                    })
                    .collect()
            })
            .collect();
        PeerTable { profiles }
    }

    fn get(&self, profile: ProfileId, peer: usize) -> Option<&PeerState> {
        self.profiles.get(profile.0)?.get(peer)
    }

    /// Every peer, as (profile, index).
    pub fn keys(&self) -> impl Iterator<Item = (ProfileId, usize)> + '_ {
        self.profiles
            .iter()
            .enumerate()
            .flat_map(|(p, peers)| (0..peers.len()).map(move |i| (ProfileId(p), i)))
    }

    pub fn ping_policy(&self, profile: ProfileId, peer: usize) -> Option<PingPolicy> {
        self.get(profile, peer).map(|p| p.ping)
    }

    /// Remembers the connection a peer's INVITE came in on.
    pub fn set_flow(
        &self,
        profile: ProfileId,
        peer: usize,
        flow: (crate::net::TransportKind, crate::net::ConnectionId),
    ) {
        if let Some(p) = self.get(profile, peer) {
            p.lock().flow = Some(flow);
        }
    }

    /// The connection a peer's INVITEs last came on, if any.
    pub fn flow(
        &self,
        profile: ProfileId,
        peer: usize,
    ) -> Option<(crate::net::TransportKind, crate::net::ConnectionId)> {
        self.get(profile, peer).and_then(|p| p.lock().flow)
    }

    /// Whether routing may send calls to the peer (pings have not marked it down).
    pub fn is_up(&self, profile: ProfileId, peer: usize) -> bool {
        self.get(profile, peer)
            .is_none_or(|p| p.up.load(Ordering::Relaxed))
    }

    /// Takes a call slot of the peer in `direction` at `now`, or names the
    /// limit that refuses it (and counts the refusal). The concurrent
    /// limit is checked first, so a refused call spends no rate token.
    pub fn admit(
        self: &Arc<Self>,
        profile: ProfileId,
        peer: usize,
        direction: Direction,
        now: Instant,
    ) -> Result<PeerCall, Limit> {
        let Some(p) = self.get(profile, peer) else {
            // Not a configured peer: nothing to count against.
            return Ok(PeerCall {
                table: self.clone(),
                profile,
                peer,
                direction,
                counted: false,
            });
        };
        let (max_calls, calls_limit, cps_limit) = match direction {
            Direction::In => (p.limits.max_calls_in, Limit::CallsIn, Limit::CpsIn),
            Direction::Out => (p.limits.max_calls_out, Limit::CallsOut, Limit::CpsOut),
        };
        let calls = p.calls.get(direction);
        let reserved = calls.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max_calls == 0 || n < max_calls).then_some(n + 1)
        });
        if reserved.is_err() {
            p.refused.get(calls_limit).fetch_add(1, Ordering::Relaxed);
            return Err(calls_limit);
        }
        if !p.lock().buckets.get_mut(direction).take(now) {
            calls.fetch_sub(1, Ordering::AcqRel);
            p.refused.get(cps_limit).fetch_add(1, Ordering::Relaxed);
            return Err(cps_limit);
        }
        p.totals.get(direction).fetch_add(1, Ordering::Relaxed);
        Ok(PeerCall {
            table: self.clone(),
            profile,
            peer,
            direction,
            counted: true,
        })
    }

    /// Records a ping's outcome; the state change it caused, if any.
    pub fn record_ping(
        &self,
        profile: ProfileId,
        peer: usize,
        outcome: &PingOutcome,
        wall_ms: u64,
    ) -> Option<PeerEvent> {
        let p = self.get(profile, peer)?;
        let mut g = p.lock();
        let h = &mut g.health;
        let alive = outcome.alive();
        h.last_ping = Some(PingResult {
            ok: alive,
            result: outcome.label().into(),
            status: outcome.status(),
            at_ms: wall_ms,
        });
        let up = p.up.load(Ordering::Relaxed);
        let event = |up: bool, pings: u32| PeerEvent {
            peer: p.name.clone(),
            up,
            pings,
            last: outcome.label(),
            status: outcome.status(),
        };
        if alive {
            h.failed_in_a_row = 0;
            h.ok_in_a_row = h.ok_in_a_row.saturating_add(1);
            if !up && h.ok_in_a_row >= p.ping.successes_before_up {
                p.up.store(true, Ordering::Relaxed);
                h.changed_at_ms = Some(wall_ms);
                return Some(event(true, h.ok_in_a_row));
            }
        } else {
            h.ok_in_a_row = 0;
            h.failed_in_a_row = h.failed_in_a_row.saturating_add(1);
            if up && h.failed_in_a_row >= p.ping.failures_before_down {
                p.up.store(false, Ordering::Relaxed);
                h.changed_at_ms = Some(wall_ms);
                return Some(event(false, h.failed_in_a_row));
            }
        }
        None
    }

    /// A call to the peer failed on it (408, 503, transport error).
    pub fn record_failure(&self, profile: ProfileId, peer: usize, status: u16, wall_ms: u64) {
        if let Some(p) = self.get(profile, peer) {
            p.lock().health.last_failure = Some(CallFailure {
                status,
                at_ms: wall_ms,
            });
        }
    }

    /// Every peer's status, in configuration order.
    pub fn statuses(&self) -> Vec<PeerStatus> {
        self.keys().filter_map(|(p, i)| self.status(p, i)).collect()
    }

    /// One peer's status by name.
    pub fn status_of(&self, name: &str) -> Option<PeerStatus> {
        self.keys()
            .find(|(p, i)| self.get(*p, *i).is_some_and(|s| s.name == name))
            .and_then(|(p, i)| self.status(p, i))
    }

    fn status(&self, profile: ProfileId, peer: usize) -> Option<PeerStatus> {
        let p = self.get(profile, peer)?;
        let g = p.lock();
        let r = |l: Limit| p.refused.get(l).load(Ordering::Relaxed);
        Some(PeerStatus {
            name: p.name.clone(),
            profile: p.profile.clone(),
            address: p.address.clone(),
            state: if p.up.load(Ordering::Relaxed) {
                "up"
            } else {
                "down"
            }
            .into(),
            ping_interval_secs: p.ping.interval.map(|d| d.as_secs()).unwrap_or(0),
            last_ping: g.health.last_ping.clone(),
            state_changed_at_ms: g.health.changed_at_ms,
            calls_in: p.calls.inbound.load(Ordering::Relaxed),
            calls_out: p.calls.outbound.load(Ordering::Relaxed),
            total_in: p.totals.inbound.load(Ordering::Relaxed),
            total_out: p.totals.outbound.load(Ordering::Relaxed),
            limits: p.limits,
            refused: Refusals {
                calls_in: r(Limit::CallsIn),
                calls_out: r(Limit::CallsOut),
                cps_in: r(Limit::CpsIn),
                cps_out: r(Limit::CpsOut),
            },
            last_failure: g.health.last_failure.clone(),
        })
    }
}

/// A call's place among its peer's calls in progress; given back on drop.
#[derive(Debug)]
pub struct PeerCall {
    table: Arc<PeerTable>,
    profile: ProfileId,
    peer: usize,
    direction: Direction,
    /// False for a peer the table does not know (nothing to give back).
    counted: bool,
}

impl PeerCall {
    pub fn peer(&self) -> (ProfileId, usize) {
        (self.profile, self.peer)
    }
}

impl Drop for PeerCall {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        if let Some(p) = self.table.get(self.profile, self.peer) {
            p.calls.get(self.direction).fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(peer: &str) -> Arc<PeerTable> {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.toml");
        std::fs::write(
            &main,
            format!(
                "[profiles.external]\nlisten = [{{ transport = \"udp\", address = \"127.0.0.1:0\" }}]\n\
                 [[profiles.external.peers]]\nname = \"gw\"\naddress = \"127.0.0.1:5090\"\nacl = [\"10.0.0.0/8\"]\n{peer}\n"
            ),
        )
        .unwrap();
        Arc::new(PeerTable::new(
            &crate::config::load(&main).unwrap().call_settings(),
        ))
    }

    const GW: (ProfileId, usize) = (ProfileId(0), 0);

    #[test]
    fn a_token_bucket_holds_one_second_and_refills_in_virtual_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10);
        for i in 0..10 {
            assert!(b.take(t0), "burst call {i}");
        }
        assert!(!b.take(t0), "the 11th in the same instant");
        assert!(!b.take(t0 + Duration::from_millis(99)), "not yet a token");
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // A long silence fills it to one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 10);
        // An instant earlier than the last one seen (another worker's
        // clock read) neither refills nor panics.
        assert!(!b.take(later - Duration::from_secs(1)));
        // Rate 0: no limit.
        let mut free = TokenBucket::new(0);
        assert!((0..100_000).all(|_| free.take(t0)));
    }

    #[test]
    fn concurrent_limits_count_per_direction_and_slots_give_back_on_drop() {
        let t = table("max_calls_in = 2\nmax_calls_out = 1");
        let now = Instant::now();
        let a = t.admit(GW.0, GW.1, Direction::In, now).unwrap();
        let b = t.admit(GW.0, GW.1, Direction::In, now).unwrap();
        assert_eq!(
            t.admit(GW.0, GW.1, Direction::In, now).unwrap_err(),
            Limit::CallsIn
        );
        // Outbound is counted apart.
        let o = t.admit(GW.0, GW.1, Direction::Out, now).unwrap();
        assert_eq!(
            t.admit(GW.0, GW.1, Direction::Out, now).unwrap_err(),
            Limit::CallsOut
        );
        let s = t.status_of("gw").unwrap();
        assert_eq!((s.calls_in, s.calls_out), (2, 1));
        assert_eq!((s.total_in, s.total_out), (2, 1));
        assert_eq!(
            s.refused,
            Refusals {
                calls_in: 1,
                calls_out: 1,
                cps_in: 0,
                cps_out: 0
            }
        );
        drop(a);
        let c = t.admit(GW.0, GW.1, Direction::In, now).unwrap();
        drop((b, c, o));
        let s = t.status_of("gw").unwrap();
        assert_eq!((s.calls_in, s.calls_out, s.total_in), (0, 0, 3));
        assert_eq!(s.limits.max_calls_in, 2);
    }

    #[test]
    fn the_rate_limit_refuses_past_its_burst_and_spends_no_call_slot() {
        let t = table("max_cps_in = 5");
        let now = Instant::now();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(t.admit(GW.0, GW.1, Direction::In, now).unwrap());
        }
        assert_eq!(
            t.admit(GW.0, GW.1, Direction::In, now).unwrap_err(),
            Limit::CpsIn
        );
        assert_eq!(Limit::CpsIn.reason(), "Peer Call Rate Exceeded");
        let s = t.status_of("gw").unwrap();
        assert_eq!((s.calls_in, s.refused.cps_in), (5, 1), "{s:?}");
        // 200 ms later: one more token (5 per second).
        held.push(
            t.admit(GW.0, GW.1, Direction::In, now + Duration::from_millis(200))
                .unwrap(),
        );
        // Outbound has no rate limit here.
        for _ in 0..100 {
            held.push(t.admit(GW.0, GW.1, Direction::Out, now).unwrap());
        }
    }

    #[test]
    fn pings_take_a_peer_down_and_up_by_counts_in_a_row() {
        let t = table(
            "ping_interval_secs = 5\nping_failures_before_down = 3\nping_successes_before_up = 2",
        );
        let p = t.ping_policy(GW.0, GW.1).unwrap();
        assert_eq!(p.interval, Some(Duration::from_secs(5)));
        assert!(t.is_up(GW.0, GW.1), "up until pings say otherwise");
        let ping = |o: PingOutcome, at: u64| t.record_ping(GW.0, GW.1, &o, at);
        assert_eq!(ping(PingOutcome::Timeout, 1), None);
        assert_eq!(ping(PingOutcome::Answered(503), 2), None);
        // An answer in between starts the count again.
        assert_eq!(ping(PingOutcome::Answered(404), 3), None);
        assert_eq!(ping(PingOutcome::Timeout, 4), None);
        assert_eq!(ping(PingOutcome::TransportError, 5), None);
        let down = ping(PingOutcome::Answered(408), 6).expect("third failure in a row");
        assert!(!down.up);
        assert_eq!(
            down.to_string(),
            "peer-down peer=gw pings=3 last=refused status=408"
        );
        assert!(!t.is_up(GW.0, GW.1));
        assert_eq!(ping(PingOutcome::Timeout, 7), None, "already down");
        assert_eq!(ping(PingOutcome::Answered(200), 8), None);
        let s = t.status_of("gw").unwrap();
        assert_eq!(s.state, "down");
        assert_eq!(s.state_changed_at_ms, Some(6));
        assert_eq!(
            s.last_ping,
            Some(PingResult {
                ok: true,
                result: "answered".into(),
                status: Some(200),
                at_ms: 8
            })
        );
        // Any answer but 408/503 is alive, 4xx and 6xx included.
        let up = ping(PingOutcome::Answered(405), 9).expect("second answer in a row");
        assert_eq!(
            up.to_string(),
            "peer-up peer=gw pings=2 last=answered status=405"
        );
        assert!(t.is_up(GW.0, GW.1));
        assert!(PingOutcome::Answered(603).alive());
        assert!(!PingOutcome::NoTarget.alive());
        assert_eq!(t.status_of("gw").unwrap().state_changed_at_ms, Some(9));
    }

    #[test]
    fn defaults_bind_nothing_and_do_not_ping() {
        let t = table("");
        let p = t.ping_policy(GW.0, GW.1).unwrap();
        assert_eq!(p.interval, None);
        assert_eq!((p.failures_before_down, p.successes_before_up), (2, 2));
        let now = Instant::now();
        let held: Vec<_> = (0..5000)
            .map(|_| t.admit(GW.0, GW.1, Direction::In, now).unwrap())
            .collect();
        assert_eq!(t.status_of("gw").unwrap().calls_in, 5000);
        drop(held);
        t.record_failure(GW.0, GW.1, 503, 42);
        let s = t.status_of("gw").unwrap();
        assert_eq!(
            s.last_failure,
            Some(CallFailure {
                status: 503,
                at_ms: 42
            })
        );
        assert_eq!(s.limits, PeerLimits::default());
        assert_eq!(t.statuses().len(), 1);
        assert!(t.status_of("nope").is_none());
    }

    #[test]
    fn slots_are_shared_across_threads() {
        let t = table("max_calls_out = 1000");
        let now = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .filter_map(|_| t.admit(GW.0, GW.1, Direction::Out, now).ok())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let held: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let admitted: usize = held.iter().map(Vec::len).sum();
        assert_eq!(admitted, 1000, "exactly the limit, never more");
        let s = t.status_of("gw").unwrap();
        assert_eq!((s.calls_out, s.refused.calls_out), (1000, 1000));
        drop(held);
        assert_eq!(t.status_of("gw").unwrap().calls_out, 0);
    }
}
