//! The web-callback task: owns the [`Center`] and the [`Store`], the way
//! the endpoint loop owns the endpoint. Each turn takes every input that is
//! ready (API requests, call events, registrations, refused commands,
//! timers), commits all the center's writes in one transaction, and only
//! then releases the replies, the call commands, the desktop events and
//! the new notification outbox rows (to the delivery task). A burst of
//! requests therefore shares one fsync (group commit), and nothing anyone
//! was told can be lost by a crash.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::call::{CallCommand, CallEvent, CommandError, ControlRequest};
use crate::callback::center::Center;
use crate::callback::{ActionError, CenterRequest, DesktopEvent, Reply, Write};
use crate::integrations::notify::{Delivery, OutboxWrite};
use crate::store::{Store, StoreError};

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
        // The recovery's own writes first.
        self.commit_and_release(Vec::new()).await?;
        let mut sweep = tokio::time::interval(KEY_SWEEP);
        loop {
            let wake = self.center.poll_timeout().map(until);
            let mut replies = Vec::new();
            tokio::select! {
                biased;
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
            self.commit_and_release(replies).await?;
        }
        Ok(())
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

    async fn commit_and_release(&mut self, replies: Vec<Answer>) -> Result<(), StoreError> {
        let writes = self.center.take_writes();
        // Kept aside: delivered only if the commit holds.
        let deliveries: Vec<Delivery> = match &self.outbox {
            Some(_) => writes
                .iter()
                .filter_map(|w| match w {
                    Write::Outbox(OutboxWrite::Enqueue(d)) => Some(d.as_ref().clone()),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        if !writes.is_empty() {
            if let Err(e) = self.store.commit(writes).await {
                tracing::error!(error = %e, "store commit failed; stopping the web-callback layer");
                for (reply, _) in replies {
                    let _ = reply.send(Err(ActionError::Unavailable(format!("store: {e}"))));
                }
                return Err(e);
            }
        }
        // Handed over before the replies: once a client is answered, the
        // delivery task has the event queued.
        if let (Some(outbox), false) = (&self.outbox, deliveries.is_empty()) {
            // A stopped delivery task finds these in the store at restart.
            let _ = outbox.send(deliveries);
        }
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
        while let Some(command) = self.center.poll_command() {
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
        while let Some(event) = self.center.poll_desktop() {
            let _ = self.desktop.send(event);
        }
        Ok(())
    }
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
