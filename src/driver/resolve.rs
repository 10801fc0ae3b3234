//! RFC 3263 §4 server location for trunk peers given by name: NAPTR, then
//! SRV (priorities, weights), then A/AAAA, with hickory-resolver on tokio.
//!
//! It owns the DNS side only: it turns a peer's configured address into an
//! ordered list of socket addresses and how long that list may be kept. The
//! call layer receives the list (`Endpoint::set_peer_targets`) and walks it
//! on failures (`call::failover`); it never resolves anything itself, so no
//! lookup ever blocks the endpoint loop.
//!
//! The peer's `transport` is configured, so NAPTR (§4.1) is used to find
//! the SRV name for that transport (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`), not
//! to choose a transport. A name with a port gets A/AAAA only (§4.2); a name
//! without one gets NAPTR, then `_sip._udp`/`_sip._tcp`/`_sips._tcp` SRV,
//! then A/AAAA with the transport's default port. SRV targets are ordered
//! by priority, and within a priority by RFC 2782's weighted random choice.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{ResolveError, TokioResolver};

use crate::net::{default_port, TransportKind};

/// The shortest and longest time a resolution is kept, whatever the TTLs
/// say: local zones often answer with TTL 0, which must not turn into a
/// query per second, and a day-long TTL must not hide a moved trunk.
pub const MIN_TTL: Duration = Duration::from_secs(30);
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// At most this many addresses are kept per peer: failover walks them one
/// Timer B at a time, so more would outlast any ring timeout.
const MAX_TARGETS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ResolveFailure {
    #[error("{name}: {source}")]
    Lookup { name: String, source: ResolveError },
    #[error("{0}: no address found (NAPTR, SRV, A/AAAA)")]
    NotFound(String),
}

/// A peer's servers in the order to try them, and until when they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub targets: Vec<SocketAddr>,
    pub ttl: Duration,
}

/// A resolver on `dns_servers` (UDP, then TCP on truncation), or on the
/// system's configuration (`/etc/resolv.conf`) when the list is empty.
pub fn build_resolver(dns_servers: &[SocketAddr]) -> Result<TokioResolver, ResolveError> {
    let mut builder = if dns_servers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let mut group = NameServerConfigGroup::new();
        for s in dns_servers {
            group.merge(NameServerConfigGroup::from_ips_clear(
                &[s.ip()],
                s.port(),
                true,
            ));
        }
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], group),
            TokioConnectionProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Bounded: a start-up with an unreachable server takes seconds, not minutes.
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    Ok(builder.build())
}

/// The NAPTR service field for a transport (RFC 3263 §4.1).
pub fn naptr_service(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "SIP+D2U",
        TransportKind::Tcp => "SIP+D2T",
        TransportKind::Tls => "SIPS+D2T",
        // RFC 7118 §8; unused: no trunk peer is reached over WebSocket (the
        // configuration refuses it).
        TransportKind::Ws => "SIP+D2W",
        TransportKind::Wss => "SIPS+D2W",
    }
}

/// The SRV prefix for a transport (RFC 3263 §4.1, last paragraphs).
pub fn srv_prefix(transport: TransportKind) -> &'static str {
    match transport {
        TransportKind::Udp => "_sip._udp",
        TransportKind::Tcp => "_sip._tcp",
        TransportKind::Tls => "_sips._tcp",
        // Unused, as above.
        TransportKind::Ws => "_sip._ws",
        TransportKind::Wss => "_sips._ws",
    }
}

/// One NAPTR record, as far as §4.1 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub service: String,
    pub replacement: String,
}

/// The SRV name to look up for `transport`: the replacement of the first
/// record (by order, then preference) with flag "s" and our service.
pub fn pick_naptr(records: &[Naptr], transport: TransportKind) -> Option<String> {
    let service = naptr_service(transport);
    records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && r.service.eq_ignore_ascii_case(service))
        .filter(|r| !r.replacement.is_empty() && r.replacement != ".")
        .min_by_key(|r| (r.order, r.preference))
        .map(|r| r.replacement.clone())
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// RFC 2782 order: by priority; within one priority, repeatedly pick a
/// record at random with probability proportional to its weight (zero
/// weights first in the list so that they get a small chance).
/// `random(n)` returns a number in `0..=n`.
pub fn order_srv(mut records: Vec<Srv>, random: &mut impl FnMut(u32) -> u32) -> Vec<Srv> {
    // "." as target: the service is decidedly not available (RFC 2782).
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let end = records
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<Srv> = records.drain(..end).collect();
        while !group.is_empty() {
            let sum: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(sum);
            let mut running = 0;
            let i = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
    }
    out
}

/// How long the answers from `until` instants may be kept, clamped.
fn ttl_of(now: Instant, until: impl IntoIterator<Item = Instant>) -> Duration {
    until
        .into_iter()
        .map(|u| u.saturating_duration_since(now))
        .min()
        .unwrap_or(MIN_TTL)
        .clamp(MIN_TTL, MAX_TTL)
}

fn name_of(n: &hickory_resolver::Name) -> String {
    let s = n.to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_ascii_lowercase()
}

/// A lookup that found nothing (NXDOMAIN, no records of the type) is an
/// empty answer for the steps of §4; anything else (no server answered)
/// is an error.
fn empty_if_absent<T>(r: Result<T, ResolveError>, name: &str) -> Result<Option<T>, ResolveFailure> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Err(source) => Err(ResolveFailure::Lookup {
            name: name.to_string(),
            source,
        }),
    }
}

/// Locates the servers of `host` (a DNS name) for `transport` (RFC 3263 §4).
pub async fn locate(
    resolver: &TokioResolver,
    host: &str,
    port: Option<u16>,
    transport: TransportKind,
) -> Result<Resolved, ResolveFailure> {
    let now = Instant::now();
    let fqdn = format!("{host}.");
    if let Some(port) = port {
        // §4.2: a port given means no NAPTR nor SRV.
        let ips = empty_if_absent(resolver.lookup_ip(fqdn.as_str()).await, host)?
            .ok_or_else(|| ResolveFailure::NotFound(host.to_string()))?;
        let targets: Vec<SocketAddr> = ips
            .iter()
            .map(|ip| SocketAddr::new(ip, port))
            .take(MAX_TARGETS)
            .collect();
        if targets.is_empty() {
            return Err(ResolveFailure::NotFound(host.to_string()));
        }
        return Ok(Resolved {
            targets,
            ttl: ttl_of(now, [ips.valid_until()]),
        });
    }
    let mut until = Vec::new();
    // §4.1: NAPTR names the SRV record for our transport.
    let naptr = empty_if_absent(
        resolver.lookup(fqdn.as_str(), RecordType::NAPTR).await,
        host,
    )?;
    let from_naptr = naptr.and_then(|lookup| {
        until.push(lookup.valid_until());
        let records: Vec<Naptr> = lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) => Some(Naptr {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    service: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: name_of(n.replacement()),
                }),
                _ => None,
            })
            .collect();
        pick_naptr(&records, transport)
    });
    let srv_name = from_naptr.unwrap_or_else(|| format!("{}.{host}", srv_prefix(transport)));
    let srv = empty_if_absent(
        resolver.srv_lookup(format!("{srv_name}.").as_str()).await,
        &srv_name,
    )?;
    let mut targets = Vec::new();
    if let Some(srv) = srv {
        until.push(srv.as_lookup().valid_until());
        let records = srv
            .iter()
            .map(|s| Srv {
                priority: s.priority(),
                weight: s.weight(),
                port: s.port(),
                target: name_of(s.target()),
            })
            .collect();
        let ordered = order_srv(records, &mut |n| rand::random_range(0..=n));
        for s in ordered {
            // One target that does not resolve must not lose the others.
            match resolver.lookup_ip(format!("{}.", s.target).as_str()).await {
                Ok(ips) => {
                    until.push(ips.valid_until());
                    targets.extend(ips.iter().map(|ip| SocketAddr::new(ip, s.port)));
                }
                Err(e) => tracing::warn!(target = %s.target, error = %e, "SRV target not resolved"),
            }
            if targets.len() >= MAX_TARGETS {
                break;
            }
        }
    } else {
        // §4.2: no SRV, the name's own addresses on the default port.
        if let Some(ips) = empty_if_absent(resolver.lookup_ip(fqdn.as_str()).await, host)? {
            until.push(ips.valid_until());
            let port = default_port(transport);
            targets.extend(ips.iter().map(|ip| SocketAddr::new(ip, port)));
        }
    }
    targets.truncate(MAX_TARGETS);
    if targets.is_empty() {
        return Err(ResolveFailure::NotFound(host.to_string()));
    }
    Ok(Resolved {
        targets,
        ttl: ttl_of(now, until),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn targets(v: &[Srv]) -> Vec<&str> {
        v.iter().map(|s| s.target.as_str()).collect()
    }

    #[test]
    fn srv_is_ordered_by_priority_first() {
        let records = vec![
            srv(20, 0, "c"),
            srv(10, 0, "a"),
            srv(30, 5, "d"),
            srv(10, 0, "b"),
        ];
        let ordered = order_srv(records, &mut |_| 0);
        assert_eq!(targets(&ordered), ["a", "b", "c", "d"]);
    }

    #[test]
    fn weights_share_a_priority_in_proportion() {
        // With weights 1 and 3, a draw of 0 or 1 takes the first, 2..=4 the second.
        let records = vec![
            srv(10, 1, "light"),
            srv(10, 3, "heavy"),
            srv(20, 0, "backup"),
        ];
        let ordered = order_srv(records.clone(), &mut |_| 1);
        assert_eq!(targets(&ordered), ["light", "heavy", "backup"]);
        let ordered = order_srv(records.clone(), &mut |n| n);
        assert_eq!(targets(&ordered), ["heavy", "light", "backup"]);
        // Over every draw, "heavy" comes first three times out of four.
        let first_heavy = (0..=4u32)
            .filter(|&d| {
                let mut once = Some(d);
                let o = order_srv(records.clone(), &mut |n| once.take().unwrap_or(n));
                o[0].target == "heavy"
            })
            .count();
        assert_eq!(first_heavy, 3, "draws 2, 3 and 4 of 0..=4");
    }

    #[test]
    fn a_dot_target_is_no_service() {
        let ordered = order_srv(vec![srv(10, 0, "."), srv(20, 0, "b")], &mut |_| 0);
        assert_eq!(targets(&ordered), ["b"]);
    }

    #[test]
    fn naptr_gives_the_srv_name_for_our_transport() {
        let n = |order, pref, service: &str, repl: &str| Naptr {
            order,
            preference: pref,
            flags: "S".into(),
            service: service.into(),
            replacement: repl.into(),
        };
        let records = vec![
            n(10, 10, "SIP+D2T", "_sip._tcp.example.com"),
            n(20, 10, "SIP+D2U", "_sip._udp.b.example.com"),
            n(20, 5, "SIP+D2U", "_sip._udp.a.example.com"),
            n(5, 5, "SIPS+D2T", "_sips._tcp.example.com"),
        ];
        assert_eq!(
            pick_naptr(&records, TransportKind::Udp).as_deref(),
            Some("_sip._udp.a.example.com")
        );
        assert_eq!(
            pick_naptr(&records, TransportKind::Tls).as_deref(),
            Some("_sips._tcp.example.com")
        );
        let mut no_s = records.clone();
        no_s.iter_mut().for_each(|r| r.flags = "A".into());
        assert_eq!(pick_naptr(&no_s, TransportKind::Udp), None);
    }

    #[test]
    fn ttls_are_clamped() {
        let now = Instant::now();
        assert_eq!(ttl_of(now, [now]), MIN_TTL);
        assert_eq!(ttl_of(now, [now + Duration::from_secs(86_400)]), MAX_TTL);
        assert_eq!(
            ttl_of(
                now,
                [
                    now + Duration::from_secs(600),
                    now + Duration::from_secs(90)
                ]
            ),
            Duration::from_secs(90)
        );
        assert_eq!(ttl_of(now, []), MIN_TTL);
    }
}
