//! The location service: bindings from addresses of record to contacts
//! (RFC 3261 §10.3 steps 6–7, §10.2.1; RFC 5626 §6 for instance ids).
//!
//! An address of record is keyed by the **user part only** (`1001`, not
//! `1001@pbx.example.com`): Switchback serves one domain, and the call layer
//! looks a callee up by the user part of the Request-URI. Users are compared
//! case-sensitively, as URI users are (§19.1.4).
//!
//! Two Contacts name the same binding when both carry the same
//! `+sip.instance` (and `reg-id`, if any) — a phone that moved to another
//! address replaces its old binding — or otherwise when their URIs are
//! equal by a simplified §19.1.4 (see `contact.rs`).
//!
//! Updates are all-or-nothing (§10.3 step 7): a REGISTER is applied to a copy
//! of the AOR's bindings and committed only if every contact passes the
//! Call-ID/CSeq ordering check. Expiry times are indexed so that the next
//! timeout is found without a scan. No clock: `now` comes in.
//!
//! A binding made over WebSocket (RFC 7118 §5, RFC 5626's flow) is tied to
//! its connection: the switch cannot open one back to a browser, so when
//! the connection closes the binding goes ([`LocationService::connection_closed`]).
//! Each view indexes the flows of the bindings it wrote, as it does their
//! expiries, and removes a binding only if it is still on that connection
//! (a refresh over a new connection moved it).
//!
//! The bindings are one concurrent table (dashmap: a lock per shard of
//! AORs, held only while one AOR is read or updated) that the registrars of
//! every endpoint worker share through [`LocationService::sibling`]; each
//! worker's INVITE routing reads it. The expiry index is each worker's own,
//! of the bindings it wrote: when an entry falls due, the binding is removed
//! only if it is still there and due (it may have been refreshed or removed
//! through another worker since), so each expiry is reported once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::contact::{ContactSpec, QValue};
use crate::net::{ConnectionId, Source};

/// One registered contact of an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address of record (the user part, see the module header).
    pub aor: String,
    /// The Contact URI, without angle brackets.
    pub contact: String,
    /// The whole Contact header value as the client sent it.
    pub contact_raw: String,
    pub expires_at: Instant,
    pub q: QValue,
    pub call_id: String,
    pub cseq: u32,
    /// `+sip.instance`, e.g. `<urn:uuid:...>`.
    pub instance_id: Option<String>,
    pub reg_id: Option<u32>,
    /// Where the REGISTER came from: received address, transport, and the
    /// stream connection to reuse for requests to this contact.
    pub source: Source,
    /// When this binding was last registered or refreshed.
    pub registered_at: Instant,
    /// The Path header values of the REGISTER (RFC 3327 §5.3), in order:
    /// the route set toward this contact, first hop first. Empty when the
    /// phone registered directly.
    pub path: Vec<String>,
    /// Binding identity (instance id or URI key).
    key: String,
}

impl Binding {
    /// A binding made outside a REGISTER (tests, provisioning).
    pub fn new(aor: &str, contact: &str, source: Source, expires_at: Instant) -> Self {
        Binding {
            aor: aor.to_string(),
            contact: contact.to_string(),
            contact_raw: format!("<{contact}>"),
            expires_at,
            q: QValue(1000),
            call_id: String::new(),
            cseq: 0,
            instance_id: None,
            reg_id: None,
            source,
            registered_at: expires_at,
            path: Vec::new(),
            key: contact.to_string(),
        }
    }

    /// Whole seconds left at `now`, rounded up (a binding that is still
    /// alive never shows `expires=0`).
    pub fn remaining_secs(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }
}

/// One Contact of a REGISTER with its effective expiry in seconds (0 removes).
#[derive(Debug, Clone)]
pub struct ContactUpdate {
    pub spec: ContactSpec,
    pub expires: u64,
}

/// What a REGISTER asks of the bindings of one AOR.
#[derive(Debug, Clone)]
pub enum Update {
    /// `Contact: *` with `Expires: 0`: remove everything.
    RemoveAll,
    Contacts(Vec<ContactUpdate>),
}

/// The context of a REGISTER the bindings record.
#[derive(Debug, Clone, Copy)]
pub struct RegisterContext<'a> {
    pub now: Instant,
    pub call_id: &'a str,
    pub cseq: u32,
    pub source: &'a Source,
    /// The REGISTER's Path values (RFC 3327), kept with every binding it makes.
    pub path: &'a [String],
}

/// What changed, for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Added or refreshed, with its expiry in seconds.
    Registered(Binding, u64),
    /// Removed by the client, or displaced by the per-AOR limit.
    Removed(Binding),
}

/// The update was refused (§10.3 step 7): nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("REGISTER with the same Call-ID and a CSeq not higher than the binding's")]
pub struct OutOfOrder;

/// Every binding, by AOR.
#[derive(Debug)]
pub struct LocationService {
    aors: Arc<DashMap<String, Vec<Binding>>>,
    /// (expires_at, aor, key) of the bindings this view wrote (see the
    /// module header: entries may be stale, and are checked when due).
    expiries: BTreeSet<(Instant, String, String)>,
    /// (connection, aor, key) of the connection-tied bindings this view
    /// wrote; stale entries are checked when their connection closes.
    flows: BTreeSet<(ConnectionId, String, String)>,
    max_per_aor: usize,
}

impl LocationService {
    pub fn new(max_per_aor: usize) -> Self {
        LocationService {
            aors: Arc::new(DashMap::new()),
            expiries: BTreeSet::new(),
            flows: BTreeSet::new(),
            max_per_aor: max_per_aor.max(1),
        }
    }

    /// A view of the same bindings with an expiry index of its own (another
    /// endpoint worker's).
    pub fn sibling(&self) -> Self {
        LocationService {
            aors: self.aors.clone(),
            expiries: BTreeSet::new(),
            flows: BTreeSet::new(),
            max_per_aor: self.max_per_aor,
        }
    }

    /// Applies a REGISTER's contacts to `aor`, all or nothing. The AOR's
    /// lock shard is held for the update only.
    pub fn apply(
        &mut self,
        aor: &str,
        ctx: RegisterContext<'_>,
        update: &Update,
    ) -> Result<Vec<Change>, OutOfOrder> {
        let entry = self.aors.entry(aor.to_string());
        let old: &[Binding] = match &entry {
            Entry::Occupied(o) => o.get(),
            Entry::Vacant(_) => &[],
        };
        let (next, changes) = self.plan(aor, old, ctx, update)?;
        for b in old {
            self.expiries
                .remove(&(b.expires_at, aor.to_string(), b.key.clone()));
        }
        for b in &next {
            self.expiries
                .insert((b.expires_at, aor.to_string(), b.key.clone()));
            if let Some(connection) = tied_connection(b) {
                self.flows
                    .insert((connection, aor.to_string(), b.key.clone()));
            }
        }
        match entry {
            Entry::Occupied(o) if next.is_empty() => {
                o.remove();
            }
            Entry::Occupied(mut o) => {
                o.insert(next);
            }
            Entry::Vacant(v) if !next.is_empty() => {
                v.insert(next);
            }
            Entry::Vacant(_) => {}
        }
        Ok(changes)
    }

    /// The AOR's bindings after the update, and what changed.
    fn plan(
        &self,
        aor: &str,
        old: &[Binding],
        ctx: RegisterContext<'_>,
        update: &Update,
    ) -> Result<(Vec<Binding>, Vec<Change>), OutOfOrder> {
        let mut next = old.to_vec();
        let mut changes = Vec::new();
        // A binding may be changed only by a newer request of its Call-ID.
        let ordered = |b: &Binding| b.call_id != ctx.call_id || ctx.cseq > b.cseq;
        match update {
            Update::RemoveAll => {
                if !next.iter().all(ordered) {
                    return Err(OutOfOrder);
                }
                changes.extend(next.drain(..).map(Change::Removed));
            }
            Update::Contacts(list) => {
                // The last mention of a contact in one request wins.
                let mut seen = std::collections::HashSet::new();
                let mut unique: Vec<&ContactUpdate> = list
                    .iter()
                    .rev()
                    .filter(|c| seen.insert(binding_key(&c.spec)))
                    .collect();
                unique.reverse();
                for c in unique {
                    let key = binding_key(&c.spec);
                    let existing = next.iter().position(|b| b.key == key);
                    if existing
                        .and_then(|i| next.get(i))
                        .is_some_and(|b| !ordered(b))
                    {
                        return Err(OutOfOrder);
                    }
                    if c.expires == 0 {
                        if let Some(i) = existing {
                            changes.push(Change::Removed(next.remove(i)));
                        }
                        continue;
                    }
                    let binding = Binding {
                        aor: aor.to_string(),
                        contact: c.spec.uri.clone(),
                        contact_raw: c.spec.raw.clone(),
                        expires_at: ctx.now + Duration::from_secs(c.expires),
                        q: c.spec.q,
                        call_id: ctx.call_id.to_string(),
                        cseq: ctx.cseq,
                        instance_id: c.spec.instance_id.clone(),
                        reg_id: c.spec.reg_id,
                        source: *ctx.source,
                        registered_at: ctx.now,
                        path: ctx.path.to_vec(),
                        key,
                    };
                    changes.push(Change::Registered(binding.clone(), c.expires));
                    match existing.and_then(|i| next.get_mut(i)) {
                        Some(slot) => *slot = binding,
                        None => next.push(binding),
                    }
                }
                // Bound the bindings per AOR: those closest to expiry go.
                while next.len() > self.max_per_aor {
                    let i = next
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| (b.expires_at, b.registered_at))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    let gone = next.remove(i);
                    changes.retain(|c| !matches!(c, Change::Registered(b, _) if b.key == gone.key));
                    changes.push(Change::Removed(gone));
                }
            }
        }
        Ok((next, changes))
    }

    /// The bindings of `aor` in registration order (as stored).
    pub fn bindings(&self, aor: &str) -> Vec<Binding> {
        self.aors.get(aor).map(|b| b.clone()).unwrap_or_default()
    }

    /// The contacts to try for `user`, best first: highest q, then the most
    /// recently registered. Bindings past expiry but not yet removed by
    /// `expire` are included; use [`LocationService::lookup_at`] to filter.
    pub fn lookup(&self, user: &str) -> Vec<Binding> {
        let mut list = self.bindings(user);
        list.sort_by(|a, b| {
            b.q.cmp(&a.q)
                .then_with(|| b.registered_at.cmp(&a.registered_at))
        });
        list
    }

    /// Like [`LocationService::lookup`], without bindings expired at `now`.
    pub fn lookup_at(&self, user: &str, now: Instant) -> Vec<Binding> {
        let mut list = self.lookup(user);
        list.retain(|b| b.expires_at > now);
        list
    }

    /// The earliest binding expiry.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _, _)| *at)
    }

    /// Removes and returns every binding whose expiry is at or before `now`
    /// (among those this view wrote; see the module header).
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        let mut gone = Vec::new();
        while let Some((at, _, _)) = self.expiries.first() {
            if *at > now {
                break;
            }
            let Some((_, aor, key)) = self.expiries.pop_first() else {
                break;
            };
            if let Entry::Occupied(mut list) = self.aors.entry(aor) {
                // Refreshed or removed meanwhile: not due, or not there.
                if let Some(i) = list
                    .get()
                    .iter()
                    .position(|b| b.key == key && b.expires_at <= now)
                {
                    gone.push(list.get_mut().remove(i));
                }
                if list.get().is_empty() {
                    list.remove();
                }
            }
        }
        gone
    }

    /// Removes and returns the bindings tied to `connection`, which closed
    /// (among those this view wrote; see the module header).
    pub fn connection_closed(&mut self, connection: ConnectionId) -> Vec<Binding> {
        let start = (connection, String::new(), String::new());
        let due: Vec<(ConnectionId, String, String)> = self
            .flows
            .range(start..)
            .take_while(|(c, _, _)| *c == connection)
            .cloned()
            .collect();
        let mut gone = Vec::new();
        for entry in due {
            self.flows.remove(&entry);
            let (_, aor, key) = entry;
            if let Entry::Occupied(mut list) = self.aors.entry(aor.clone()) {
                if let Some(i) = list
                    .get()
                    .iter()
                    .position(|b| b.key == key && tied_connection(b) == Some(connection))
                {
                    let b = list.get_mut().remove(i);
                    self.expiries.remove(&(b.expires_at, aor, key));
                    gone.push(b);
                }
                if list.get().is_empty() {
                    list.remove();
                }
            }
        }
        gone
    }

    /// Number of AORs with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }

    /// Number of bindings in all (every worker's).
    pub fn len(&self) -> usize {
        self.aors.iter().map(|e| e.value().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.aors.is_empty()
    }
}

/// The connection a binding lives and dies with: the one its REGISTER came
/// on, when that was a WebSocket (see the module header). Bindings over
/// TCP and TLS outlive their connection: the switch opens a new one.
fn tied_connection(b: &Binding) -> Option<ConnectionId> {
    b.source
        .connection
        .filter(|_| b.source.transport.is_websocket())
}

/// The identity of the binding a Contact names.
fn binding_key(spec: &ContactSpec) -> String {
    match &spec.instance_id {
        Some(instance) => match spec.reg_id {
            Some(reg) => format!("instance:{instance};reg-id={reg}"),
            None => format!("instance:{instance}"),
        },
        None => spec.key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ProfileId, TransportKind};
    use crate::registrar::contact::{parse_contacts, Contacts};

    fn source() -> Source {
        Source {
            profile: ProfileId(0),
            transport: TransportKind::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "192.0.2.7:40000".parse().unwrap(),
            connection: None,
        }
    }

    fn update(contacts: &[(&str, u64)]) -> Update {
        let values: Vec<&str> = contacts.iter().map(|(c, _)| *c).collect();
        let Some(Contacts::List(specs)) = parse_contacts(&values).unwrap() else {
            panic!("no list")
        };
        Update::Contacts(
            specs
                .into_iter()
                .zip(contacts)
                .map(|(spec, (_, e))| ContactUpdate { spec, expires: *e })
                .collect(),
        )
    }

    fn ctx<'a>(now: Instant, call_id: &'a str, cseq: u32, src: &'a Source) -> RegisterContext<'a> {
        RegisterContext {
            now,
            call_id,
            cseq,
            source: src,
            path: &[],
        }
    }

    #[test]
    fn add_refresh_remove() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(10);
        loc.apply(
            "1001",
            ctx(t0, "c1", 1, &src),
            &update(&[("<sip:1001@a>", 60)]),
        )
        .unwrap();
        assert_eq!(loc.next_expiry(), Some(t0 + Duration::from_secs(60)));
        // Same Call-ID, same CSeq: refused, nothing changed.
        assert_eq!(
            loc.apply(
                "1001",
                ctx(t0, "c1", 1, &src),
                &update(&[("<sip:1001@a>", 30)])
            ),
            Err(OutOfOrder)
        );
        // Another Call-ID may update regardless of CSeq.
        loc.apply(
            "1001",
            ctx(t0, "c2", 1, &src),
            &update(&[("<sip:1001@a>", 30)]),
        )
        .unwrap();
        assert_eq!(loc.len(), 1);
        assert_eq!(loc.next_expiry(), Some(t0 + Duration::from_secs(30)));
        let changes = loc
            .apply(
                "1001",
                ctx(t0, "c2", 2, &src),
                &update(&[("<sip:1001@a>", 0)]),
            )
            .unwrap();
        assert!(matches!(&changes[..], [Change::Removed(_)]));
        assert!(loc.is_empty() && loc.next_expiry().is_none() && loc.aor_count() == 0);
    }

    #[test]
    fn all_or_nothing() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(10);
        loc.apply("u", ctx(t0, "c1", 5, &src), &update(&[("<sip:u@a>", 60)]))
            .unwrap();
        let r = loc.apply(
            "u",
            ctx(t0, "c1", 4, &src),
            &update(&[("<sip:u@b>", 60), ("<sip:u@a>", 60)]),
        );
        assert_eq!(r, Err(OutOfOrder));
        assert_eq!(loc.lookup("u").len(), 1);
    }

    #[test]
    fn instance_id_replaces_moved_contact() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(10);
        let inst = r#";+sip.instance="<urn:uuid:1>""#;
        loc.apply(
            "u",
            ctx(t0, "c1", 1, &src),
            &update(&[(&format!("<sip:u@10.0.0.1>{inst}"), 60)]),
        )
        .unwrap();
        loc.apply(
            "u",
            ctx(t0, "c2", 1, &src),
            &update(&[(&format!("<sip:u@10.0.0.2>{inst}"), 60)]),
        )
        .unwrap();
        let l = loc.lookup("u");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].contact, "sip:u@10.0.0.2");
    }

    #[test]
    fn lookup_orders_by_q_then_recency_and_expire_removes() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(10);
        loc.apply(
            "u",
            ctx(t0, "c1", 1, &src),
            &update(&[("<sip:u@low>;q=0.1", 100), ("<sip:u@old>", 50)]),
        )
        .unwrap();
        loc.apply(
            "u",
            ctx(t0 + Duration::from_secs(1), "c2", 1, &src),
            &update(&[("<sip:u@new>", 100)]),
        )
        .unwrap();
        let order: Vec<_> = loc.lookup("u").into_iter().map(|b| b.contact).collect();
        assert_eq!(order, vec!["sip:u@new", "sip:u@old", "sip:u@low"]);
        let gone = loc.expire(t0 + Duration::from_secs(50));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].contact, "sip:u@old");
        assert_eq!(loc.len(), 2);
        assert_eq!(loc.next_expiry(), Some(t0 + Duration::from_secs(100)));
        assert_eq!(loc.lookup_at("u", t0 + Duration::from_secs(100)).len(), 1);
        assert_eq!(loc.lookup_at("u", t0 + Duration::from_secs(101)).len(), 0);
    }

    #[test]
    fn per_aor_limit_displaces_the_soonest_expiring() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(2);
        loc.apply(
            "u",
            ctx(t0, "c1", 1, &src),
            &update(&[("<sip:u@a>", 10), ("<sip:u@b>", 100)]),
        )
        .unwrap();
        let changes = loc
            .apply("u", ctx(t0, "c2", 1, &src), &update(&[("<sip:u@c>", 100)]))
            .unwrap();
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Removed(b) if b.contact == "sip:u@a")));
        assert_eq!(loc.len(), 2);
    }

    fn ws_source(connection: u64) -> Source {
        Source {
            transport: TransportKind::Ws,
            connection: Some(ConnectionId(connection)),
            ..source()
        }
    }

    #[test]
    fn a_websocket_binding_goes_with_its_connection_and_only_then() {
        let t0 = Instant::now();
        let (ws1, ws2) = (ws_source(1), ws_source(2));
        let mut loc = LocationService::new(10);
        let inst = r#";+sip.instance="<urn:uuid:b>";reg-id=1"#;
        let contact = format!("<sip:x@df7j.invalid;transport=ws;ob>{inst}");
        loc.apply("u", ctx(t0, "c1", 1, &ws1), &update(&[(&contact, 600)]))
            .unwrap();
        // Another user over TCP on a connection of the same number: untouched.
        let mut tcp = ws_source(1);
        tcp.transport = TransportKind::Tcp;
        loc.apply("v", ctx(t0, "c9", 1, &tcp), &update(&[("<sip:v@h>", 600)]))
            .unwrap();
        assert!(loc.connection_closed(ConnectionId(7)).is_empty());
        let gone = loc.connection_closed(ConnectionId(1));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].contact, "sip:x@df7j.invalid;transport=ws;ob");
        assert!(loc.lookup("u").is_empty());
        assert_eq!(
            loc.lookup("v").len(),
            1,
            "a TCP binding outlives its connection"
        );
        assert_eq!(loc.next_expiry(), Some(t0 + Duration::from_secs(600)));
        // Registered again over connection 1, then refreshed over 2: the
        // close of 1 leaves it, the close of 2 takes it.
        loc.apply("u", ctx(t0, "c2", 1, &ws1), &update(&[(&contact, 600)]))
            .unwrap();
        loc.apply("u", ctx(t0, "c2", 2, &ws2), &update(&[(&contact, 600)]))
            .unwrap();
        assert!(loc.connection_closed(ConnectionId(1)).is_empty());
        assert_eq!(loc.lookup("u")[0].source.connection, Some(ConnectionId(2)));
        assert_eq!(loc.connection_closed(ConnectionId(2)).len(), 1);
        assert!(loc.lookup("u").is_empty());
        assert!(loc.connection_closed(ConnectionId(2)).is_empty(), "once");
        // Through a sibling view (another worker) the binding is seen but
        // not indexed: only the writer removes it, so it is reported once.
        loc.apply("u", ctx(t0, "c3", 1, &ws1), &update(&[(&contact, 600)]))
            .unwrap();
        let mut other = loc.sibling();
        assert!(other.connection_closed(ConnectionId(1)).is_empty());
        assert_eq!(loc.connection_closed(ConnectionId(1)).len(), 1);
    }

    #[test]
    fn remaining_rounds_up() {
        let t0 = Instant::now();
        let src = source();
        let mut loc = LocationService::new(2);
        loc.apply("u", ctx(t0, "c", 1, &src), &update(&[("<sip:u@a>", 10)]))
            .unwrap();
        let bs = loc.bindings("u");
        let b = &bs[0];
        assert_eq!(b.remaining_secs(t0), 10);
        assert_eq!(b.remaining_secs(t0 + Duration::from_millis(9_500)), 1);
        assert_eq!(b.remaining_secs(t0 + Duration::from_secs(10)), 0);
    }
}
