//! Contention benchmark for the session table: the same small table (calls
//! by id, a dialog-key index, an interaction index) over dashmap (sharded
//! RwLocks) and papaya (lock-free reads), driven by 2 threads at once on a
//! table of ~10,000 live calls. `lib` is `switchback::session::SessionTable`
//! itself, to check the library matches the winning variant.
//!
//! Mix A: thread 1 = SIP endpoint (a `by_dialog` lookup per message, plus
//! one call churn — insert a call with 2 dialog keys, remove the oldest —
//! per 50 lookups); thread 2 = readers (`get` by call id and
//! `by_interaction`, alternating, a `snapshot` every 10,000 ops).
//! Mix B: both threads run the endpoint mix.
//!
//! Run: `cargo bench --bench session_table` (prints ops/s per thread and
//! the p99 of sampled lookup latencies; median of 5 interleaved rounds).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use switchback::session::DialogKey;

const LIVE: usize = 10_000;
const OPS: usize = 1_000_000;
const CHURN_EVERY: usize = 50;
const SNAPSHOT_EVERY: usize = 10_000;
const SAMPLE_EVERY: usize = 64;
const RUNS: usize = 5;

struct Rec(#[allow(dead_code)] u64);

trait Table: Send + Sync + 'static {
    fn insert(&self, call: &str, rec: Arc<Rec>, interaction: Option<&str>);
    fn remove(&self, call: &str) -> Option<Arc<Rec>>;
    fn get(&self, call: &str) -> Option<Arc<Rec>>;
    fn add_dialog(&self, call: &str, key: DialogKey);
    fn by_dialog(&self, key: &DialogKey) -> Option<(String, Arc<Rec>)>;
    fn by_interaction(&self, interaction: &str) -> Vec<(String, Arc<Rec>)>;
    fn snapshot(&self) -> Vec<(String, Arc<Rec>)>;
    fn len(&self) -> usize;
}

// ---------------------------------------------------------------- dashmap

mod dash {
    use super::*;
    use dashmap::mapref::entry::Entry as E;
    use dashmap::DashMap;

    struct Entry {
        gen: u64,
        record: Arc<Rec>,
        interaction: Option<String>,
        dialogs: Vec<DialogKey>,
    }

    /// Index entries are written while the call's shard lock is held, so a
    /// concurrent remove either sees them or prevents them.
    #[derive(Default)]
    pub struct Dash {
        calls: DashMap<String, Entry>,
        dialogs: DashMap<DialogKey, (String, u64)>,
        interactions: DashMap<String, Vec<(String, u64)>>,
        gen: AtomicU64,
    }

    impl Dash {
        fn index(&self, interaction: &str, call: &str, gen: u64) {
            self.interactions
                .entry(interaction.to_owned())
                .or_default()
                .push((call.to_owned(), gen));
        }

        fn unindex(&self, interaction: &str, call: &str, gen: u64) {
            if let Some(mut v) = self.interactions.get_mut(interaction) {
                v.retain(|(c, g)| !(c == call && *g == gen));
            }
            self.interactions
                .remove_if(interaction, |_, v| v.is_empty());
        }
    }

    impl Table for Dash {
        fn insert(&self, call: &str, rec: Arc<Rec>, interaction: Option<&str>) {
            match self.calls.entry(call.to_owned()) {
                E::Occupied(mut o) => {
                    let e = o.get_mut();
                    e.record = rec;
                    if e.interaction.as_deref() != interaction {
                        if let Some(old) = e.interaction.take() {
                            self.unindex(&old, call, e.gen);
                        }
                        if let Some(i) = interaction {
                            self.index(i, call, e.gen);
                        }
                        e.interaction = interaction.map(str::to_owned);
                    }
                }
                E::Vacant(v) => {
                    let gen = self.gen.fetch_add(1, Ordering::Relaxed);
                    if let Some(i) = interaction {
                        self.index(i, call, gen);
                    }
                    v.insert(Entry {
                        gen,
                        record: rec,
                        interaction: interaction.map(str::to_owned),
                        dialogs: Vec::new(),
                    });
                }
            }
        }

        fn remove(&self, call: &str) -> Option<Arc<Rec>> {
            let (_, e) = self.calls.remove(call)?;
            for k in &e.dialogs {
                self.dialogs
                    .remove_if(k, |_, (c, g)| c == call && *g == e.gen);
            }
            if let Some(i) = &e.interaction {
                self.unindex(i, call, e.gen);
            }
            Some(e.record)
        }

        fn get(&self, call: &str) -> Option<Arc<Rec>> {
            self.calls.get(call).map(|e| e.record.clone())
        }

        fn add_dialog(&self, call: &str, key: DialogKey) {
            if let Some(mut e) = self.calls.get_mut(call) {
                if !e.dialogs.contains(&key) {
                    e.dialogs.push(key.clone());
                }
                let gen = e.gen;
                self.dialogs.insert(key, (call.to_owned(), gen));
            }
        }

        fn by_dialog(&self, key: &DialogKey) -> Option<(String, Arc<Rec>)> {
            let (call, gen) = self.dialogs.get(key).map(|r| r.clone())?;
            let e = self.calls.get(&call)?;
            (e.gen == gen).then(|| (call.clone(), e.record.clone()))
        }

        fn by_interaction(&self, interaction: &str) -> Vec<(String, Arc<Rec>)> {
            let calls = match self.interactions.get(interaction) {
                Some(v) => v.clone(),
                None => return Vec::new(),
            };
            calls
                .into_iter()
                .filter_map(|(c, g)| {
                    let rec = self.calls.get(&c).filter(|e| e.gen == g)?.record.clone();
                    Some((c, rec))
                })
                .collect()
        }

        fn snapshot(&self) -> Vec<(String, Arc<Rec>)> {
            self.calls
                .iter()
                .map(|r| (r.key().clone(), r.record.clone()))
                .collect()
        }

        fn len(&self) -> usize {
            self.calls.len()
        }
    }
}

// ----------------------------------------------------------------- papaya

mod pap {
    use super::*;
    use papaya::{Compute, HashMap, Operation};

    #[derive(Clone)]
    struct Entry {
        gen: u64,
        record: Arc<Rec>,
        interaction: Option<Arc<str>>,
        dialogs: Arc<[DialogKey]>,
    }

    /// No locks to hold: each index entry is published first and then
    /// validated against the call's entry, undone if the call went away
    /// meanwhile (a concurrent remove either sees it or it is undone).
    #[derive(Default)]
    pub struct Pap {
        calls: HashMap<String, Entry>,
        dialogs: HashMap<DialogKey, (String, u64)>,
        interactions: HashMap<String, Arc<[(String, u64)]>>,
        gen: AtomicU64,
    }

    impl Pap {
        fn index(&self, interaction: &str, call: &str, gen: u64) {
            let item = (call.to_owned(), gen);
            self.interactions.pin().update_or_insert_with(
                interaction.to_owned(),
                |v| v.iter().cloned().chain([item.clone()]).collect(),
                || Arc::from([item.clone()]),
            );
        }

        fn unindex(&self, interaction: &str, call: &str, gen: u64) {
            self.interactions
                .pin()
                .compute(interaction.to_owned(), |e| match e {
                    Some((_, v)) => {
                        let rest: Vec<_> = v
                            .iter()
                            .filter(|(c, g)| !(c == call && *g == gen))
                            .cloned()
                            .collect();
                        if rest.is_empty() {
                            Operation::Remove
                        } else if rest.len() == v.len() {
                            Operation::Abort(())
                        } else {
                            Operation::Insert(Arc::from(rest))
                        }
                    }
                    None => Operation::Abort(()),
                });
        }

        fn live(&self, call: &str, gen: u64) -> Option<Entry> {
            self.calls.pin().get(call).filter(|e| e.gen == gen).cloned()
        }
    }

    impl Table for Pap {
        fn insert(&self, call: &str, rec: Arc<Rec>, interaction: Option<&str>) {
            let new_gen = self.gen.fetch_add(1, Ordering::Relaxed);
            let inter: Option<Arc<str>> = interaction.map(Arc::from);
            let calls = self.calls.pin();
            let r = calls.compute(call.to_owned(), |e| {
                Operation::<_, ()>::Insert(match e {
                    Some((_, old)) => Entry {
                        record: rec.clone(),
                        interaction: inter.clone(),
                        ..old.clone()
                    },
                    None => Entry {
                        gen: new_gen,
                        record: rec.clone(),
                        interaction: inter.clone(),
                        dialogs: Arc::from([]),
                    },
                })
            });
            let (old, gen) = match r {
                Compute::Updated { old, new } => (old.1.interaction.clone(), new.1.gen),
                Compute::Inserted(_, new) => (None, new.gen),
                _ => unreachable!(),
            };
            if old.as_deref() == interaction {
                return;
            }
            if let Some(o) = old {
                self.unindex(&o, call, gen);
            }
            if let Some(i) = interaction {
                self.index(i, call, gen);
                let still = self.live(call, gen);
                if still.and_then(|e| e.interaction).as_deref() != Some(i) {
                    self.unindex(i, call, gen);
                }
            }
        }

        fn remove(&self, call: &str) -> Option<Arc<Rec>> {
            let e = self.calls.pin().remove(call)?.clone();
            let dialogs = self.dialogs.pin();
            for k in e.dialogs.iter() {
                let _ = dialogs.remove_if(k, |_, (c, g)| c == call && *g == e.gen);
            }
            if let Some(i) = &e.interaction {
                self.unindex(i, call, e.gen);
            }
            Some(e.record)
        }

        fn get(&self, call: &str) -> Option<Arc<Rec>> {
            self.calls.pin().get(call).map(|e| e.record.clone())
        }

        fn add_dialog(&self, call: &str, key: DialogKey) {
            let calls = self.calls.pin();
            let r = calls.compute(call.to_owned(), |e| match e {
                Some((_, old)) if old.dialogs.contains(&key) => Operation::Abort(Some(old.gen)),
                Some((_, old)) => Operation::Insert(Entry {
                    dialogs: old.dialogs.iter().cloned().chain([key.clone()]).collect(),
                    ..old.clone()
                }),
                None => Operation::Abort(None),
            });
            let gen = match r {
                Compute::Updated { new, .. } => new.1.gen,
                Compute::Aborted(Some(gen)) => gen,
                _ => return,
            };
            let dialogs = self.dialogs.pin();
            dialogs.insert(key.clone(), (call.to_owned(), gen));
            if self.live(call, gen).is_none() {
                let _ = dialogs.remove_if(&key, |_, (c, g)| c == call && *g == gen);
            }
        }

        fn by_dialog(&self, key: &DialogKey) -> Option<(String, Arc<Rec>)> {
            let dialogs = self.dialogs.pin();
            let (call, gen) = dialogs.get(key)?;
            let calls = self.calls.pin();
            let e = calls.get(call).filter(|e| e.gen == *gen)?;
            Some((call.clone(), e.record.clone()))
        }

        fn by_interaction(&self, interaction: &str) -> Vec<(String, Arc<Rec>)> {
            let Some(list) = self.interactions.pin().get(interaction).cloned() else {
                return Vec::new();
            };
            let calls = self.calls.pin();
            list.iter()
                .filter_map(|(c, g)| {
                    let e = calls.get(c).filter(|e| e.gen == *g)?;
                    Some((c.clone(), e.record.clone()))
                })
                .collect()
        }

        fn snapshot(&self) -> Vec<(String, Arc<Rec>)> {
            self.calls
                .pin()
                .iter()
                .map(|(k, e)| (k.clone(), e.record.clone()))
                .collect()
        }

        fn len(&self) -> usize {
            self.calls.len()
        }
    }
}

// ------------------------------------------------------------ the library

struct Lib(switchback::session::SessionTable<Rec>);

impl Table for Lib {
    fn insert(&self, call: &str, rec: Arc<Rec>, interaction: Option<&str>) {
        self.0.insert(call, rec, interaction)
    }
    fn remove(&self, call: &str) -> Option<Arc<Rec>> {
        self.0.remove(call)
    }
    fn get(&self, call: &str) -> Option<Arc<Rec>> {
        self.0.get(call)
    }
    fn add_dialog(&self, call: &str, key: DialogKey) {
        self.0.add_dialog(call, key)
    }
    fn by_dialog(&self, key: &DialogKey) -> Option<(String, Arc<Rec>)> {
        self.0.by_dialog(key)
    }
    fn by_interaction(&self, interaction: &str) -> Vec<(String, Arc<Rec>)> {
        self.0.by_interaction(interaction)
    }
    fn snapshot(&self) -> Vec<(String, Arc<Rec>)> {
        self.0.snapshot()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

// ---------------------------------------------------------------- workload

/// Names for call number `n` of thread-namespace `ns`, built up front so
/// the timed loop measures the table, not string formatting.
struct Names {
    calls: Vec<String>,
    keys: Vec<[DialogKey; 2]>,
    inters: Vec<String>,
}

impl Names {
    fn new(ns: usize, count: usize) -> Names {
        let calls = (0..count).map(|n| format!("c{ns}-{n}")).collect();
        let keys = (0..count)
            .map(|n| {
                let k = |leg: &str| DialogKey {
                    call_id: format!("{n:08x}-{ns}-{leg}@10.0.0.1"),
                    local_tag: format!("sb{n:x}{leg}"),
                };
                [k("a"), k("b")]
            })
            .collect();
        let inters = (0..count / 2).map(|n| format!("i{ns}-{n}")).collect();
        Names {
            calls,
            keys,
            inters,
        }
    }

    fn add(&self, t: &dyn Table, n: usize) {
        t.insert(
            &self.calls[n],
            Arc::new(Rec(n as u64)),
            Some(&self.inters[n / 2]),
        );
        for k in &self.keys[n] {
            t.add_dialog(&self.calls[n], k.clone());
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

struct Stats {
    ops_per_sec: f64,
    p99_ns: u64,
}

/// Live calls of one namespace are `lo..hi`; `hi` is published so that a
/// reader thread picks mostly live ids.
fn endpoint(t: &dyn Table, names: &Names, live: usize, hi: &AtomicU64, seed: u64) -> Stats {
    let mut rng = Rng(seed);
    let mut lo = 0usize;
    let mut top = live;
    let mut samples = Vec::with_capacity(OPS / SAMPLE_EVERY + 1);
    let start = Instant::now();
    for op in 0..OPS {
        if op % CHURN_EVERY == CHURN_EVERY - 1 {
            names.add(t, top);
            top += 1;
            hi.store(top as u64, Ordering::Relaxed);
            black_box(t.remove(&names.calls[lo]));
            lo += 1;
            continue;
        }
        let n = lo + rng.next() % (top - lo);
        let key = &names.keys[n][rng.next() & 1];
        if op % SAMPLE_EVERY == 0 {
            let s = Instant::now();
            black_box(t.by_dialog(key));
            samples.push(s.elapsed().as_nanos() as u64);
        } else {
            black_box(t.by_dialog(key));
        }
    }
    finish(start.elapsed(), samples)
}

fn readers(t: &dyn Table, names: &Names, hi: &AtomicU64, seed: u64) -> Stats {
    let mut rng = Rng(seed);
    let mut samples = Vec::with_capacity(OPS / SAMPLE_EVERY + 1);
    let start = Instant::now();
    for op in 0..OPS {
        if op % SNAPSHOT_EVERY == SNAPSHOT_EVERY - 1 {
            black_box(t.snapshot());
            continue;
        }
        let top = hi.load(Ordering::Relaxed) as usize;
        let n = top - LIVE + rng.next() % LIVE;
        let s = (op % SAMPLE_EVERY == 0).then(Instant::now);
        if op & 1 == 0 {
            black_box(t.get(&names.calls[n]));
        } else {
            black_box(t.by_interaction(&names.inters[n / 2]));
        }
        if let Some(s) = s {
            samples.push(s.elapsed().as_nanos() as u64);
        }
    }
    finish(start.elapsed(), samples)
}

fn finish(elapsed: Duration, mut samples: Vec<u64>) -> Stats {
    samples.sort_unstable();
    Stats {
        ops_per_sec: OPS as f64 / elapsed.as_secs_f64(),
        p99_ns: samples[samples.len() * 99 / 100],
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mix {
    EndpointAndReaders,
    TwoEndpoints,
}

type Maker = fn() -> Arc<dyn Table>;

fn run(make: Maker, mix: Mix, names: &[Arc<Names>; 2]) -> [Stats; 2] {
    let t = make();
    let per_ns = match mix {
        Mix::EndpointAndReaders => LIVE,
        Mix::TwoEndpoints => LIVE / 2,
    };
    let spaces = if mix == Mix::TwoEndpoints { 2 } else { 1 };
    for names in names.iter().take(spaces) {
        for n in 0..per_ns {
            names.add(&*t, n);
        }
    }
    assert_eq!(t.len(), per_ns * spaces);
    let his = Arc::new([AtomicU64::new(per_ns as u64), AtomicU64::new(per_ns as u64)]);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (t, his, barrier) = (t.clone(), his.clone(), barrier.clone());
            let names = names.clone();
            std::thread::spawn(move || {
                barrier.wait();
                match (mix, i) {
                    (Mix::EndpointAndReaders, 0) => {
                        endpoint(&*t, &names[0], per_ns, &his[0], 0x9E37_79B9)
                    }
                    (Mix::EndpointAndReaders, _) => readers(&*t, &names[0], &his[0], 0x85EB_CA6B),
                    (Mix::TwoEndpoints, i) => {
                        endpoint(&*t, &names[i], per_ns, &his[i], 0xC2B2_AE35 + i as u64)
                    }
                }
            })
        })
        .collect();
    let mut out = handles.into_iter().map(|h| h.join().unwrap());
    let r = [out.next().unwrap(), out.next().unwrap()];
    assert_eq!(t.len(), per_ns * spaces);
    r
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let count = LIVE + OPS / CHURN_EVERY + 1;
    let names = [
        Arc::new(Names::new(0, count)),
        Arc::new(Names::new(1, count)),
    ];
    let makers: [(&str, Maker); 3] = [
        ("dashmap", || Arc::new(dash::Dash::default())),
        ("papaya", || Arc::new(pap::Pap::default())),
        ("lib", || {
            Arc::new(Lib(switchback::session::SessionTable::new()))
        }),
    ];
    println!(
        "session table, {LIVE} live calls, {OPS} ops per thread, 2 threads, churn 1/{CHURN_EVERY}, median of {RUNS} interleaved rounds"
    );
    for (mix, label, roles) in [
        (
            Mix::EndpointAndReaders,
            "A endpoint+readers",
            ["endpoint", "readers"],
        ),
        (
            Mix::TwoEndpoints,
            "B two endpoints",
            ["endpoint1", "endpoint2"],
        ),
    ] {
        println!("mix {label}:");
        // Rounds interleave the maps so that load from elsewhere on the
        // machine falls on all of them alike; the median round is shown.
        let mut runs: Vec<Vec<[Stats; 2]>> = makers.iter().map(|_| Vec::new()).collect();
        for _ in 0..RUNS {
            for (i, (_, make)) in makers.iter().enumerate() {
                runs[i].push(run(*make, mix, &names));
            }
        }
        for ((name, _), mut runs) in makers.iter().zip(runs) {
            runs.sort_by(|a, b| {
                let s = |r: &[Stats; 2]| r[0].ops_per_sec + r[1].ops_per_sec;
                s(a).total_cmp(&s(b))
            });
            let m = &runs[RUNS / 2];
            println!(
                "  {name:8} {}: {:>5.2} Mops/s p99 {:>5} ns | {}: {:>5.2} Mops/s p99 {:>5} ns | total {:>5.2} Mops/s",
                roles[0],
                m[0].ops_per_sec / 1e6,
                m[0].p99_ns,
                roles[1],
                m[1].ops_per_sec / 1e6,
                m[1].p99_ns,
                (m[0].ops_per_sec + m[1].ops_per_sec) / 1e6
            );
        }
    }
}
