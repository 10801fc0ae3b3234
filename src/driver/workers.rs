//! The endpoint workers: one task per shard, each running its own sans-IO
//! [`Endpoint`] the way quinn runs its endpoint — receive one input, hand it
//! over, drain every `poll_*`, sleep until the earliest `poll_timeout` —
//! and the routing rules that send every input to the worker that owns it
//! (`crate::shard`): a SIP message by its Call-ID, a command by its call id,
//! a media event by its leg (or call), a cross-worker message by its
//! address. Events of every worker reach the driver's one event loop through
//! one channel, in each worker's order (so in each call's order).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::call::{CallCommand, ControlRequest};
use crate::endpoint::{Endpoint, EndpointEvent, PeerMessage};
use crate::media::{MediaEngine, MediaEvent};
use crate::shard::Shards;
use crate::sip::MessageHeaders;
use crate::transport::{Inbound, InboundFanout, Transports};

/// Parsed messages that may wait for one worker.
pub const WORKER_QUEUE: usize = 16 * 1024;
/// Inputs a worker takes from its network channel before it drains its
/// outputs: batching cuts wake-ups under load without starving timers.
const BATCH: usize = 32;

/// What a worker owns, built before it starts.
pub struct Worker {
    pub endpoint: Endpoint,
    pub transports: Transports,
    pub inbound: mpsc::Receiver<Inbound>,
    pub commands: mpsc::UnboundedReceiver<ControlRequest>,
    pub media_events: mpsc::UnboundedReceiver<MediaEvent>,
    pub peer: mpsc::UnboundedReceiver<PeerMessage>,
    /// Trunk peers' servers, each time they are resolved again.
    pub peer_updates: mpsc::UnboundedReceiver<super::peers::PeerUpdate>,
}

/// How to reach every worker.
#[derive(Clone)]
pub struct Routes {
    pub shards: Shards,
    pub commands: Vec<mpsc::UnboundedSender<ControlRequest>>,
    pub media_events: Vec<mpsc::UnboundedSender<MediaEvent>>,
    pub peer: Vec<mpsc::UnboundedSender<PeerMessage>>,
    pub peer_updates: Vec<mpsc::UnboundedSender<super::peers::PeerUpdate>>,
    /// Round robin for calls created without an id.
    next: Arc<AtomicUsize>,
}

impl Routes {
    pub fn new(shards: Shards) -> (Self, Vec<WorkerChannels>) {
        let mut routes = Routes {
            shards: shards.clone(),
            commands: Vec::new(),
            media_events: Vec::new(),
            peer: Vec::new(),
            peer_updates: Vec::new(),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let mut ends = Vec::new();
        for _ in 0..shards.count() {
            let (ctx, crx) = mpsc::unbounded_channel();
            let (mtx, mrx) = mpsc::unbounded_channel();
            let (ptx, prx) = mpsc::unbounded_channel();
            let (utx, urx) = mpsc::unbounded_channel();
            routes.commands.push(ctx);
            routes.media_events.push(mtx);
            routes.peer.push(ptx);
            routes.peer_updates.push(utx);
            ends.push(WorkerChannels {
                commands: crx,
                media_events: mrx,
                peer: prx,
                peer_updates: urx,
            });
        }
        (routes, ends)
    }

    /// Hands a command to the worker that owns its call; a call placed
    /// without an id goes to the next worker in turn, which makes one it owns.
    pub fn command(&self, request: ControlRequest) {
        let worker = match command_call(&request.command) {
            Some(call) => self.shards.of_key(call),
            None => self.next.fetch_add(1, Ordering::Relaxed) % self.shards.count(),
        };
        if let Err(e) = self.commands[worker].send(request) {
            let _ = e.0.reply.send(Err(crate::call::CommandError::Busy(
                "the switch is stopping".into(),
            )));
        }
    }

    /// A trunk peer resolved again: every worker routes calls to it.
    pub fn peer_update(&self, update: super::peers::PeerUpdate) {
        for tx in &self.peer_updates {
            let _ = tx.send(update.clone());
        }
    }

    /// Hands a media event to the worker that owns its leg (or call).
    pub fn media_event(&self, event: MediaEvent) {
        let worker = match &event {
            MediaEvent::Latched { leg, .. }
            | MediaEvent::Dtmf { leg, .. }
            | MediaEvent::DtmfSent { leg, .. }
            | MediaEvent::DtmfFailed { leg, .. }
            | MediaEvent::RtpTimeout { leg }
            | MediaEvent::OpenFailed { leg, .. } => self.shards.of_leg(leg.0),
            MediaEvent::RecordingStarted { call, .. }
            | MediaEvent::RecordingStopped { call, .. }
            | MediaEvent::RecordingFailed { call, .. } => self.shards.of_key(call),
        };
        let _ = self.media_events[worker].send(event);
    }
}

/// A worker's receiving ends of [`Routes`].
pub struct WorkerChannels {
    pub commands: mpsc::UnboundedReceiver<ControlRequest>,
    pub media_events: mpsc::UnboundedReceiver<MediaEvent>,
    pub peer: mpsc::UnboundedReceiver<PeerMessage>,
    pub peer_updates: mpsc::UnboundedReceiver<super::peers::PeerUpdate>,
}

/// The call a command is about (`None`: an originate without an id).
fn command_call(command: &CallCommand) -> Option<&str> {
    use CallCommand as C;
    match command {
        C::Originate(o) => o.call.as_ref().map(|c| c.0.as_str()),
        C::Hangup { call }
        | C::Hold { call, .. }
        | C::Retrieve { call, .. }
        | C::Mute { call, .. }
        | C::Unmute { call, .. }
        | C::SendDtmf { call, .. }
        | C::StartRecording { call }
        | C::PauseRecording { call }
        | C::ResumeRecording { call }
        | C::StopRecording { call }
        | C::Transfer { call, .. }
        | C::Consult { call, .. }
        | C::Alternate { call }
        | C::CancelConsult { call }
        | C::CompleteTransfer { call }
        | C::Conference { call }
        | C::Remove { call, .. }
        | C::Leave { call, .. }
        | C::Volume { call, .. }
        | C::Supervise { call, .. } => Some(&call.0),
    }
}

/// The worker of a parsed message: by its Call-ID (every message of a
/// dialog, and the responses to requests we sent, carry the same one).
/// Connection news goes to every worker by [`fan_out`], not through here.
pub fn route_inbound(shards: &Shards, inbound: &Inbound) -> usize {
    let call_id = match inbound {
        Inbound::Message { message, .. } => match &**message {
            crate::sip::SipMessage::Request(r) => r.call_id(),
            crate::sip::SipMessage::Response(r) => r.call_id(),
        },
        Inbound::Reject { response, .. } => response.call_id(),
        Inbound::ConnectionUp { .. }
        | Inbound::ConnectionDown { .. }
        | Inbound::ConnectFailed { .. } => None,
    };
    call_id.map(|c| shards.of_key(c)).unwrap_or(0)
}

/// Stream readers (TCP, TLS) share one channel; this task hands their
/// messages to the owning worker and tells every worker about connections
/// (each keeps its own writer table), in the order they were read.
pub async fn fan_out(mut rx: mpsc::Receiver<Inbound>, fanout: InboundFanout) {
    while let Some(inbound) = rx.recv().await {
        match inbound {
            Inbound::ConnectionUp {
                id,
                transport,
                remote,
                writer,
            } => {
                for w in fanout.all() {
                    let _ = w
                        .send(Inbound::ConnectionUp {
                            id,
                            transport,
                            remote,
                            writer: writer.clone(),
                        })
                        .await;
                }
            }
            Inbound::ConnectionDown { id } => {
                for w in fanout.all() {
                    let _ = w.send(Inbound::ConnectionDown { id }).await;
                }
            }
            Inbound::ConnectFailed {
                profile,
                transport,
                remote,
                unsent,
            } => {
                // Every worker forgets the connection; each unsent message
                // goes back to the worker that sent it (by its Call-ID).
                let workers = fanout.all();
                let mut mine: Vec<Vec<Bytes>> = vec![Vec::new(); workers.len()];
                for bytes in unsent {
                    // Our own bytes, so they parse; routed like a message
                    // that arrived (the fan-out's rule is by Call-ID).
                    let owner = crate::sip::parse(&bytes, usize::MAX)
                        .ok()
                        .and_then(|m| {
                            let probe = Inbound::Message {
                                source: crate::net::Source {
                                    profile,
                                    transport,
                                    local: remote,
                                    remote,
                                    connection: None,
                                },
                                message: Box::new(m),
                            };
                            let picked = fanout.pick(&probe);
                            workers.iter().position(|w| w.same_channel(picked))
                        })
                        .unwrap_or(0);
                    if let Some(list) = mine.get_mut(owner) {
                        list.push(bytes);
                    }
                }
                for (w, unsent) in workers.iter().zip(mine) {
                    let _ = w
                        .send(Inbound::ConnectFailed {
                            profile,
                            transport,
                            remote,
                            unsent,
                        })
                        .await;
                }
            }
            other => {
                // Streams do not retransmit: wait for room (backpressure).
                if fanout.pick(&other).send(other).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Runs one worker until its network channel closes (or the task is aborted
/// at shutdown).
pub async fn run(
    mut w: Worker,
    media: MediaEngine,
    routes: Routes,
    events: mpsc::UnboundedSender<EndpointEvent>,
) {
    loop {
        let wake = w
            .endpoint
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            inbound = w.inbound.recv() => {
                let Some(inbound) = inbound else { break };
                feed(&mut w, Instant::now(), inbound);
                drain(&mut w, &media, &routes, &events);
                // Whatever else is already queued, up to a batch, without
                // going back through the select (fewer wake-ups under load).
                for _ in 1..BATCH {
                    match w.inbound.try_recv() {
                        Ok(inbound) => feed(&mut w, Instant::now(), inbound),
                        Err(_) => break,
                    }
                    drain(&mut w, &media, &routes, &events);
                }
                continue;
            }
            Some(message) = w.peer.recv() => w.endpoint.handle_peer(Instant::now(), message),
            Some(update) = w.peer_updates.recv() => super::peers::apply(&update, &mut w.endpoint, &mut w.transports),
            Some(event) = w.media_events.recv() => w.endpoint.handle_media_event(Instant::now(), event),
            Some(request) = w.commands.recv() => {
                let result = w.endpoint.handle_command(Instant::now(), request.command);
                let _ = request.reply.send(result);
            }
            _ = super::sleep_until(wake) => w.endpoint.handle_timeout(Instant::now()),
        }
        drain(&mut w, &media, &routes, &events);
    }
}

/// Sends what the endpoint queued: media commands, SIP, cross-worker
/// messages, events.
fn drain(
    w: &mut Worker,
    media: &MediaEngine,
    routes: &Routes,
    events: &mpsc::UnboundedSender<EndpointEvent>,
) {
    while let Some(command) = w.endpoint.poll_media() {
        media.command(command);
    }
    while let Some(t) = w.endpoint.poll_transmit() {
        super::peers::send(&mut w.transports, &mut w.endpoint, Instant::now(), t);
    }
    // A message that could not be sent may have ended a leg.
    while let Some(command) = w.endpoint.poll_media() {
        media.command(command);
    }
    while let Some((worker, message)) = w.endpoint.poll_peer() {
        if let Some(tx) = routes.peer.get(worker) {
            let _ = tx.send(message);
        }
    }
    while let Some(event) = w.endpoint.poll_event() {
        let _ = events.send(event);
    }
}

fn feed(w: &mut Worker, now: Instant, inbound: Inbound) {
    match inbound {
        Inbound::Message { source, message } => w.endpoint.handle_message(now, source, *message),
        Inbound::Reject { source, response } => w.endpoint.handle_reject(now, source, *response),
        Inbound::ConnectionUp {
            id,
            transport,
            remote,
            writer,
        } => w.transports.connection_up(id, transport, remote, writer),
        Inbound::ConnectionDown { id } => {
            w.transports.connection_down(id);
            w.endpoint.connection_closed(id);
        }
        Inbound::ConnectFailed {
            profile,
            transport,
            remote,
            unsent,
        } => super::peers::connect_failed(
            &mut w.transports,
            &mut w.endpoint,
            now,
            profile,
            transport,
            remote,
            unsent,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ConnectionId, ProfileId, Source, TransportKind};
    use std::net::SocketAddr;
    use std::time::Duration;

    const BOUND: Duration = Duration::from_secs(5);

    fn options(call_id: &str) -> Bytes {
        Bytes::from(format!(
            "OPTIONS sip:s@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:s@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn message(call_id: &str) -> Inbound {
        let remote: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        Inbound::Message {
            source: Source {
                profile: ProfileId(0),
                transport: TransportKind::Tcp,
                local: remote,
                remote,
                connection: None,
            },
            message: Box::new(crate::sip::parse(&options(call_id), 65535).unwrap()),
        }
    }

    async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
        tokio::time::timeout(BOUND, rx.recv())
            .await
            .expect("the fan-out delivers within the bound")
            .expect("channel open")
    }

    /// A Call-ID that the two-worker shards map to `worker`.
    fn call_id_on(shards: &Shards, worker: usize, n: usize) -> String {
        (0..)
            .map(|i| format!("c{n}-{i}@127.0.0.1"))
            .find(|c| shards.of_key(c) == worker)
            .unwrap()
    }

    #[tokio::test]
    async fn connection_news_reach_every_worker_and_each_message_its_owner() {
        let shards = Shards::new(2);
        let (mut txs, mut rxs) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel(16);
            txs.push(tx);
            rxs.push(rx);
        }
        let fanout = {
            let shards = shards.clone();
            InboundFanout::new(txs, move |i| route_inbound(&shards, i)).unwrap()
        };
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(fan_out(rx, fanout));
        let remote: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let (writer, _writes) = mpsc::channel(1);
        let id = ConnectionId(7);
        tx.send(Inbound::ConnectionUp {
            id,
            transport: TransportKind::Tcp,
            remote,
            writer,
        })
        .await
        .unwrap();
        let (on0, on1) = (call_id_on(&shards, 0, 1), call_id_on(&shards, 1, 2));
        tx.send(message(&on1)).await.unwrap();
        tx.send(message(&on0)).await.unwrap();
        tx.send(Inbound::ConnectionDown { id }).await.unwrap();

        for (worker, rx) in rxs.iter_mut().enumerate() {
            // Every worker hears of the connection first, its own message
            // next, the connection's end last: the order it was read in.
            assert!(matches!(next(rx).await, Inbound::ConnectionUp { id: got, .. } if got == id));
            let mine = if worker == 0 { &on0 } else { &on1 };
            match next(rx).await {
                Inbound::Message { message, .. } => {
                    assert_eq!(message.call_id(), Some(mine.as_str()), "worker {worker}")
                }
                other => panic!("worker {worker}: a message, not {other:?}"),
            }
            assert!(matches!(next(rx).await, Inbound::ConnectionDown { id: got } if got == id));
        }

        // A connection that failed with two unsent messages: every worker
        // forgets it, and each message goes back to the worker that sent it.
        tx.send(Inbound::ConnectFailed {
            profile: ProfileId(0),
            transport: TransportKind::Tcp,
            remote,
            unsent: vec![options(&on0), options(&on1)],
        })
        .await
        .unwrap();
        for (worker, rx) in rxs.iter_mut().enumerate() {
            match next(rx).await {
                Inbound::ConnectFailed { unsent, .. } => {
                    let mine = if worker == 0 { &on0 } else { &on1 };
                    assert_eq!(unsent.len(), 1, "worker {worker}");
                    assert_eq!(unsent[0], options(mine), "worker {worker}");
                }
                other => panic!("worker {worker}: ConnectFailed, not {other:?}"),
            }
        }
        drop(tx);
        tokio::time::timeout(BOUND, task)
            .await
            .expect("the fan-out ends when its input closes")
            .unwrap();
    }
}
