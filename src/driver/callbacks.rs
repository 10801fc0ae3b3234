//! The web-callback task: owns the [`Center`] and the [`Store`], the way
//! the endpoint loop owns the endpoint. Each turn takes every input that is
//! ready (API requests, call events, registrations, refused commands,
//! timers) and queues all the center's writes as one commit; a releaser
//! task awaits each commit in turn and only then releases what that turn
//! decided: the new notification outbox rows (to the delivery task), the
//! replies, the call commands and the desktop events. Turns are pipelined:
//! the center goes on deciding while a commit is out, and the writer
//! gathers every commit queued meanwhile into its next transaction (one
//! fsync for many turns). Commits are applied and released in order, and
//! nothing anyone was told can be lost by a crash.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::call::{CallCommand, CallEvent, CommandError, ControlRequest};
use crate::callback::center::Center;
use crate::callback::{ActionError, CenterRequest, DesktopEvent, Reply, Write};
use crate::integrations::notify::{Delivery, OutboxWrite};
use crate::store::{PendingCommit, Store, StoreError};

/// What reaches the center besides API requests.
#[derive(Debug)]
pub enum CenterInput {
    Call(CallEvent),
    Registration {
        user: String,
        contact: String,
        up: bool,
    },
    CommandFailed(CallCommand, CommandError),
}

/// How often idempotency keys past their window are forgotten.
const KEY_SWEEP: Duration = Duration::from_secs(600);

/// How many inputs one turn takes before it commits.
const TURN: usize = 1024;

#[derive(Debug)]
pub struct CallbackTask {
    pub center: Center,
    pub store: Store,
    pub requests: mpsc::Receiver<CenterRequest>,
    pub inputs: mpsc::UnboundedReceiver<CenterInput>,
    /// Where refused commands come back as inputs.
    pub feedback: mpsc::UnboundedSender<CenterInput>,
    pub commands: mpsc::Sender<ControlRequest>,
    pub desktop: broadcast::Sender<DesktopEvent>,
    /// The notification delivery task: outbox rows once they are committed.
    pub outbox: Option<mpsc::UnboundedSender<Vec<Delivery>>>,
}

impl CallbackTask {
    /// Runs until both input queues close or the store fails. A store that
    /// cannot commit ends the task: the center's memory would be ahead of
    /// what survives a restart, so the switch stops rather than lie.
    pub async fn run(mut self) -> Result<(), StoreError> {
        let (turns, queued) = mpsc::channel(TURNS_IN_FLIGHT);
        let releaser = Releaser {
            commands: self.commands.clone(),
            feedback: self.feedback.clone(),
            desktop: self.desktop.clone(),
            outbox: self.outbox.take(),
        };
        let mut released = tokio::spawn(releaser.run(queued));
        // The recovery's own writes first.
        let mut open = self.queue_turn(&turns, Vec::new()).await?;
        let mut sweep = tokio::time::interval(KEY_SWEEP);
        while open {
            let wake = self.center.poll_timeout().map(until);
            let mut replies = Vec::new();
            tokio::select! {
                biased;
                // The releaser stops only when a commit failed.
                outcome = &mut released => return joined(outcome),
                input = self.inputs.recv() => match input {
                    Some(input) => self.input(input),
                    None => break,
                },
                request = self.requests.recv() => match request {
                    Some(r) => self.request(r, &mut replies),
                    None => break,
                },
                _ = super::sleep_until(wake) => self.center.handle_timeout(Timestamp::now()),
                _ = sweep.tick() => {
                    let before = self.center.forget_old_keys(Timestamp::now());
                    if let Err(e) = self.store.forget_idempotency_before(before).await {
                        tracing::warn!(error = %e, "old idempotency keys not forgotten");
                    }
                }
            }
            for _ in 0..TURN {
                if let Ok(input) = self.inputs.try_recv() {
                    self.input(input);
                } else if let Ok(r) = self.requests.try_recv() {
                    self.request(r, &mut replies);
                } else {
                    break;
                }
            }
            if self
                .center
                .poll_timeout()
                .is_some_and(|at| at <= Timestamp::now())
            {
                self.center.handle_timeout(Timestamp::now());
            }
            open = self.queue_turn(&turns, replies).await?;
        }
        drop(turns);
        joined(released.await)
    }

    fn input(&mut self, input: CenterInput) {
        let now = Timestamp::now();
        match input {
            CenterInput::Call(e) => self.center.handle_call_event(now, &e),
            CenterInput::Registration { user, contact, up } => {
                self.center.handle_registration(now, &user, &contact, up)
            }
            CenterInput::CommandFailed(c, e) => self.center.handle_command_failed(now, &c, &e),
        }
    }

    fn request(&mut self, r: CenterRequest, replies: &mut Vec<Answer>) {
        let result = self.center.handle_request(Timestamp::now(), r.request);
        replies.push((r.reply, result));
    }

    /// Queues this turn's commit with the writer and its release with the
    /// releaser; `Ok(false)` once the releaser is gone (its outcome says
    /// why), an error when the writer is.
    async fn queue_turn(
        &mut self,
        turns: &mpsc::Sender<Turn>,
        replies: Vec<Answer>,
    ) -> Result<bool, StoreError> {
        let writes = self.center.take_writes();
        // Kept aside: handed over only if the commit holds.
        let deliveries: Vec<Delivery> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Outbox(OutboxWrite::Enqueue(d)) => Some(d.as_ref().clone()),
                _ => None,
            })
            .collect();
        let commit = match self.store.queue_commit(writes).await {
            Ok(commit) => commit,
            Err(e) => {
                tracing::error!(error = %e, "store gone; stopping the web-callback layer");
                unavailable(replies, &e);
                return Err(e);
            }
        };
        let turn = Turn {
            commit,
            deliveries,
            replies,
            commands: std::iter::from_fn(|| self.center.poll_command()).collect(),
            desktop: std::iter::from_fn(|| self.center.poll_desktop()).collect(),
        };
        Ok(turns.send(turn).await.is_ok())
    }
}

/// At most this many turns wait for their commits; the center pauses
/// behind them (the writer is the bottleneck, not the center).
const TURNS_IN_FLIGHT: usize = 256;

/// What one turn decided, held until its commit is durable.
struct Turn {
    commit: PendingCommit,
    deliveries: Vec<Delivery>,
    replies: Vec<Answer>,
    commands: Vec<CallCommand>,
    desktop: Vec<DesktopEvent>,
}

/// Releases turns in the order they were queued, each once durable.
struct Releaser {
    commands: mpsc::Sender<ControlRequest>,
    feedback: mpsc::UnboundedSender<CenterInput>,
    desktop: broadcast::Sender<DesktopEvent>,
    outbox: Option<mpsc::UnboundedSender<Vec<Delivery>>>,
}

impl Releaser {
    /// Ends when the turns stop coming, or at the first failed commit:
    /// what was decided after it is not released (its replies say the
    /// store is unavailable).
    async fn run(self, mut turns: mpsc::Receiver<Turn>) -> Result<(), StoreError> {
        while let Some(mut turn) = turns.recv().await {
            if let Err(e) = turn.commit.durable().await {
                tracing::error!(error = %e, "store commit failed; stopping the web-callback layer");
                unavailable(turn.replies, &e);
                turns.close();
                while let Some(later) = turns.recv().await {
                    unavailable(later.replies, &e);
                }
                return Err(e);
            }
            self.release(turn).await;
        }
        Ok(())
    }

    async fn release(&self, turn: Turn) {
        // Handed over before the replies: once a client is answered, the
        // delivery task has the event queued.
        if let (Some(outbox), false) = (&self.outbox, turn.deliveries.is_empty()) {
            // A stopped delivery task finds these in the store at restart.
            let _ = outbox.send(turn.deliveries);
        }
        for (reply, result) in turn.replies {
            let _ = reply.send(result);
        }
        for command in turn.commands {
            let (reply, answer) = oneshot::channel();
            let feedback = self.feedback.clone();
            let sent = command.clone();
            if self
                .commands
                .send(ControlRequest { command, reply })
                .await
                .is_err()
            {
                break;
            }
            tokio::spawn(async move {
                if let Ok(Err(error)) = answer.await {
                    let _ = feedback.send(CenterInput::CommandFailed(sent, error));
                }
            });
        }
        for event in turn.desktop {
            let _ = self.desktop.send(event);
        }
    }
}

fn unavailable(replies: Vec<Answer>, e: &StoreError) {
    for (reply, _) in replies {
        let _ = reply.send(Err(ActionError::Unavailable(format!("store: {e}"))));
    }
}

fn joined(
    outcome: Result<Result<(), StoreError>, tokio::task::JoinError>,
) -> Result<(), StoreError> {
    outcome.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the web-callback releaser panicked");
        Err(StoreError::Closed("web-callback releaser"))
    })
}

type Answer = (
    oneshot::Sender<Result<Reply, ActionError>>,
    Result<Reply, ActionError>,
);

/// A wall-clock deadline as a tokio instant.
pub(super) fn until(at: Timestamp) -> tokio::time::Instant {
    let wait = at.duration_since(Timestamp::now());
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + wait.min(Duration::from_secs(3600))
}
