//! Test fixtures for the callback routes: a fake center task answering
//! [`CenterRequest`]s, a fake store behind [`CallbackReads`], and simple
//! validators standing in for `callback::request`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::callback_api::CallbackApi;
use super::testkit::accepting;
use super::HttpState;
use crate::callback::request::{NumberError, TimeError};
use crate::callback::{
    ActionError, Agent, AgentState, AgentView, Callback, CallbackReads, CallbackRequest,
    CallbackWithHistory, CenterRequest, ContactStatus, DesktopEvent, DesktopEventKind,
    HistoryEntry, HistoryKind, InteractionId, ListFilter, NewCallback, Page, ReadError, ReadFuture,
    Reply, Request, State,
};

/// A fixed clock reading for records the fakes make.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_900_000_000).unwrap()
}

/// A callback in `state`, as the center or the store would return it.
pub fn sample(id: &str, state: State) -> Callback {
    let request = CallbackRequest {
        queue_id: "sales".into(),
        callback_numbers: vec!["+15550100".into()],
        callback_user_name: Some("Ada".into()),
        validate_callback_numbers: true,
        ..CallbackRequest::default()
    };
    Callback {
        state,
        ..Callback::new(InteractionId(id.into()), request, t0())
    }
}

fn from_new(new: &NewCallback) -> Callback {
    let sample = sample("cb-00000000000000a1", State::Queued);
    Callback {
        interaction_queue: new.request.queue_id.clone(),
        request: CallbackRequest {
            queue_id: new.request.queue_id.clone(),
            callback_numbers: new.request.callback_numbers.clone(),
            callback_scheduled_time: new.request.callback_scheduled_time,
            ..sample.request.clone()
        },
        ..sample
    }
}

pub fn agent_view(agent: &str, state: AgentState) -> AgentView {
    AgentView {
        agent: Agent {
            id: agent.into(),
            state,
            reason: None,
            since: t0(),
            idle_since: None,
        },
        team: Some("blue".into()),
        skills: vec!["en".into()],
        interactions: vec![],
        registered: true,
    }
}

/// A desktop event numbered `seq`: agent events for even numbers,
/// interaction events (owned by `agent`) for odd ones.
pub fn desktop_event(seq: u64, agent: &str) -> DesktopEvent {
    let kind = if seq.is_multiple_of(2) {
        DesktopEventKind::Agent {
            agent: agent.into(),
            state: AgentState::Ready,
            reason: None,
        }
    } else {
        DesktopEventKind::Interaction {
            id: InteractionId(format!("cb-{seq:016x}")),
            state: State::Offered,
            agent: Some(agent.into()),
            queue: "sales".into(),
            reason: "offered".into(),
        }
    };
    DesktopEvent {
        seq,
        at: t0(),
        kind,
    }
}

/// The fake store: callbacks with history, the desktop event log, and what
/// list queries it was asked.
#[derive(Debug, Default)]
pub struct FakeStore {
    pub callbacks: Mutex<Vec<CallbackWithHistory>>,
    pub desktop: Mutex<Vec<DesktopEvent>>,
    pub filters: Mutex<Vec<ListFilter>>,
    /// Desktop events the "center" commits and broadcasts at the moment of
    /// the next backlog read, before the read sees the log: the race a
    /// reconnecting desktop must survive.
    pub commit_on_read: Mutex<Vec<DesktopEvent>>,
    /// Desktop events committed just after the next backlog read took its
    /// snapshot: only a stream subscribed before reading gets them.
    pub commit_after_read: Mutex<Vec<DesktopEvent>>,
    pub broadcast: Mutex<Option<broadcast::Sender<DesktopEvent>>>,
    pub desktop_reads: AtomicUsize,
    pub failing: AtomicBool,
}

impl FakeStore {
    /// Stores `event` and then broadcasts it, as the center does.
    pub fn commit(&self, event: DesktopEvent) {
        self.desktop.lock().unwrap().push(event.clone());
        if let Some(tx) = &*self.broadcast.lock().unwrap() {
            let _ = tx.send(event);
        }
    }
}

fn ready<T: Send + 'static>(value: Result<T, ReadError>) -> ReadFuture<T> {
    Box::pin(async move { value })
}

impl CallbackReads for Arc<FakeStore> {
    fn callback(&self, id: InteractionId) -> ReadFuture<Option<CallbackWithHistory>> {
        if self.failing.load(Ordering::SeqCst) {
            return ready(Err(ReadError::new("disk I/O error")));
        }
        let found = self
            .callbacks
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.callback.id == id)
            .cloned();
        ready(Ok(found))
    }

    fn list(&self, filter: ListFilter) -> ReadFuture<Page> {
        if self.failing.load(Ordering::SeqCst) {
            return ready(Err(ReadError::new("disk I/O error")));
        }
        self.filters.lock().unwrap().push(filter);
        ready(Ok(Page {
            items: vec![sample("cb-0000000000000001", State::Queued)],
            next: Some("page-2".into()),
        }))
    }

    fn desktop_events_after(&self, after: u64, limit: usize) -> ReadFuture<Vec<DesktopEvent>> {
        self.desktop_reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return ready(Err(ReadError::new("disk I/O error")));
        }
        let racing: Vec<_> = self.commit_on_read.lock().unwrap().drain(..).collect();
        for event in racing {
            self.commit(event);
        }
        let page = self
            .desktop
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect();
        let late: Vec<_> = self.commit_after_read.lock().unwrap().drain(..).collect();
        for event in late {
            self.commit(event);
        }
        ready(Ok(page))
    }
}

/// Times: RFC 3339, or a civil time read in `zone`.
fn parse_time(raw: &str, zone: Option<&str>) -> Result<Timestamp, TimeError> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime = raw
        .parse()
        .map_err(|e: jiff::Error| TimeError::NotIso(e.to_string()))?;
    let zone = zone.ok_or(TimeError::NoOffset)?;
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| TimeError::UnknownZone(zone.to_string()))?;
    civil
        .to_zoned(tz)
        .map(|z| z.timestamp())
        .map_err(|e| TimeError::CannotPlace {
            zone: zone.to_string(),
            reason: e.to_string(),
        })
}

/// Numbers: spaces and dashes dropped; national digits get +1.
fn normalize_number(raw: &str) -> Result<String, NumberError> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, compact.as_str()),
    };
    if digits.len() < 4 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotNumber);
    }
    Ok(if plus {
        format!("+{digits}")
    } else {
        format!("+1{digits}")
    })
}

/// Create bodies: `queueId` (a string) and `callbackNumbers` (numbers) are
/// required; `callbackScheduledTime` is optional.
fn validate_create(body: &[u8], _now: Timestamp) -> Result<CallbackRequest, (String, String)> {
    let bad = |f: &str, m: &str| (f.to_owned(), m.to_owned());
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad("body", &e.to_string()))?;
    let queue = json["queueId"]
        .as_str()
        .ok_or_else(|| bad("queueId", "queueId is required"))?;
    let numbers = json["callbackNumbers"]
        .as_array()
        .ok_or_else(|| bad("callbackNumbers", "callbackNumbers is required"))?
        .iter()
        .map(|n| {
            n.as_str()
                .ok_or_else(|| bad("callbackNumbers", "numbers are strings"))
                .and_then(|n| {
                    normalize_number(n).map_err(|e| bad("callbackNumbers", &e.to_string()))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let at = match json["callbackScheduledTime"].as_str() {
        Some(raw) => {
            Some(parse_time(raw, None).map_err(|e| bad("callbackScheduledTime", &e.to_string()))?)
        }
        None => None,
    };
    Ok(CallbackRequest {
        queue_id: queue.into(),
        callback_numbers: numbers,
        callback_scheduled_time: at,
        ..CallbackRequest::default()
    })
}

pub struct Fakes {
    pub store: Arc<FakeStore>,
    pub center: mpsc::Receiver<CenterRequest>,
}

/// A [`CallbackApi`] over the fake store and validators; the center's queue
/// is returned for a test (or [`spawn_center`]) to answer.
pub fn fake_api() -> (CallbackApi, Fakes) {
    let (center, queue) = mpsc::channel(8);
    let (desktop, _) = broadcast::channel(64);
    let store = Arc::new(FakeStore::default());
    *store.broadcast.lock().unwrap() = Some(desktop.clone());
    let api = CallbackApi {
        center,
        reads: Arc::new(store.clone()),
        desktop,
        validate_create: Arc::new(validate_create),
        parse_time: Arc::new(parse_time),
        normalize_number: Arc::new(normalize_number),
        enricher: None,
        notifications: None,
    };
    (
        api,
        Fakes {
            store,
            center: queue,
        },
    )
}

/// How the fake center treats one request.
pub enum CenterAnswer {
    Reply(Result<Reply, ActionError>),
    /// Drop the reply slot: the center died mid-request.
    Drop,
    /// Keep the reply slot and never answer.
    Stall,
}

/// What a working center would answer (ids and times fixed).
pub fn plausible(request: &Request) -> CenterAnswer {
    let cb = |id: &InteractionId, state: State| {
        Box::new(Callback {
            id: id.clone(),
            ..sample("", state)
        })
    };
    CenterAnswer::Reply(Ok(match request {
        Request::Create {
            callback,
            idempotency_key,
        } => Reply::Created {
            callback: Box::new(from_new(callback)),
            // The fake remembers one key: "seen-before".
            new: idempotency_key.as_deref() != Some("seen-before"),
        },
        Request::Replay { idempotency_key } if idempotency_key == "seen-before" => Reply::Created {
            callback: Box::new(sample("cb-0000000000000001", State::Queued)),
            new: false,
        },
        Request::Replay { .. } => Reply::NoReplay,
        Request::Cancel { id, .. } => Reply::Callback(cb(id, State::Cancelled)),
        Request::Reschedule { id, at, .. } => Reply::Callback({
            let mut cb = cb(id, State::Rescheduled);
            cb.request.callback_scheduled_time = Some(*at);
            cb
        }),
        Request::Status { id } => Reply::Status(ContactStatus {
            id: id.clone(),
            state: State::Queued,
            position: Some(2),
            estimated_wait_secs: Some(90),
            callback_scheduled_time: None,
        }),
        Request::Agent { agent, .. } | Request::AgentView { agent } => {
            Reply::Agent(Box::new(agent_view(agent, AgentState::Ready)))
        }
        Request::Interaction { id, agent, .. } => Reply::Callback(Box::new(Callback {
            agent: Some(agent.clone()),
            ..*cb(id, State::ReadyToCall)
        })),
        Request::ScheduleForContact { at, .. } => Reply::Created {
            callback: {
                let mut cb = Box::new(sample("cb-00000000000000b2", State::Scheduled));
                cb.request.callback_scheduled_time = *at;
                cb
            },
            new: true,
        },
        Request::Dialable { .. } => Reply::Callbacks(vec![
            sample("cb-0000000000000001", State::Queued),
            sample("cb-0000000000000002", State::Scheduled),
        ]),
    }))
}

/// Runs a fake center answering each request by `answer`; every request
/// received is passed on to the returned receiver, in order.
pub fn spawn_center(
    mut queue: mpsc::Receiver<CenterRequest>,
    answer: impl Fn(&Request) -> CenterAnswer + Send + 'static,
) -> mpsc::UnboundedReceiver<Request> {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stalled: Vec<oneshot::Sender<_>> = Vec::new();
        while let Some(CenterRequest { request, reply }) = queue.recv().await {
            let answer = answer(&request);
            let _ = seen_tx.send(request);
            match answer {
                CenterAnswer::Reply(r) => {
                    let _ = reply.send(r);
                }
                CenterAnswer::Drop => drop(reply),
                CenterAnswer::Stall => stalled.push(reply),
            }
        }
    });
    seen
}

pub struct CallbackHarness {
    pub app: Router,
    pub store: Arc<FakeStore>,
    /// Every request the fake center received, in order.
    pub seen: mpsc::UnboundedReceiver<Request>,
}

/// The whole API with the callback layer faked. Must run inside a runtime.
pub fn callback_harness(
    answer: impl Fn(&Request) -> CenterAnswer + Send + 'static,
) -> CallbackHarness {
    let (api, fakes) = fake_api();
    let seen = spawn_center(fakes.center, answer);
    let state = HttpState {
        callback_api: Some(api),
        ..accepting().state
    };
    CallbackHarness {
        app: super::router(state),
        store: fakes.store,
        seen,
    }
}

/// A callback with two history steps, stored under `id`.
pub fn with_history(id: &str) -> CallbackWithHistory {
    CallbackWithHistory {
        callback: sample(id, State::Queued),
        history: vec![
            HistoryEntry {
                at: t0(),
                kind: HistoryKind::Created { by: "api".into() },
            },
            HistoryEntry {
                at: t0(),
                kind: HistoryKind::StateChanged {
                    from: State::Scheduled,
                    to: State::Queued,
                    reason: "due".into(),
                },
            },
        ],
    }
}
