//! What leaves the center, in three queues the driver drains in order:
//! the store writes (committed first, in one transaction), then the call
//! commands and the desktop events. Nothing leaves before its writes are
//! durable, which is what lets a `kill -9` lose nothing.
//!
//! This part owns the queues and the desktop's numbering: every desktop
//! event is numbered here, written for replay and queued for the live
//! stream at once, so the two never disagree. It decides nothing; the
//! center's other parts say what to write.

use std::collections::{HashSet, VecDeque};

use jiff::Timestamp;

use crate::call::CallCommand;
use crate::callback::model::{
    Callback, DesktopEvent, DesktopEventKind, HistoryEntry, HistoryKind, InteractionId, Write,
};
use crate::integrations::notify::{self, Notice, NoticeKind, NotifySettings, OutboxWrite};

#[derive(Debug, Default)]
pub(super) struct Output {
    /// The last desktop event's number (the store's, at start-up).
    desktop_seq: u64,
    writes: Vec<Write>,
    commands: VecDeque<CallCommand>,
    desktop: VecDeque<DesktopEvent>,
}

impl Output {
    /// Numbering desktop events on from `last_desktop_seq`.
    pub(super) fn new(last_desktop_seq: u64) -> Output {
        Output {
            desktop_seq: last_desktop_seq,
            ..Output::default()
        }
    }

    pub(super) fn write(&mut self, write: Write) {
        self.writes.push(write);
    }

    /// The interaction's record as it is now.
    pub(super) fn save(&mut self, cb: &Callback) {
        self.writes.push(Write::Callback(Box::new(cb.clone())));
    }

    /// One step of an interaction's history.
    pub(super) fn history(&mut self, id: &InteractionId, now: Timestamp, kind: HistoryKind) {
        self.writes
            .push(Write::History(id.clone(), HistoryEntry { at: now, kind }));
    }

    /// A desktop event: numbered, written for replay, queued for release.
    pub(super) fn emit(&mut self, now: Timestamp, kind: DesktopEventKind) {
        self.desktop_seq += 1;
        let event = DesktopEvent {
            seq: self.desktop_seq,
            at: now,
            kind,
        };
        self.writes.push(Write::Desktop(event.clone()));
        self.desktop.push_back(event);
    }

    /// An outbox row for every endpoint that wants this event, committed
    /// with the change it reports.
    pub(super) fn notify(&mut self, settings: &NotifySettings, now: Timestamp, kind: NoticeKind) {
        let notice = Notice::new(now, kind);
        for d in notify::deliveries(settings, &notice) {
            self.writes
                .push(Write::Outbox(OutboxWrite::Enqueue(Box::new(d))));
        }
    }

    pub(super) fn command(&mut self, command: CallCommand) {
        self.commands.push_back(command);
    }

    /// The record of `id` last saved and not yet taken (a finished
    /// interaction's last word, once the center no longer holds it).
    pub(super) fn last_saved(&self, id: &InteractionId) -> Option<Box<Callback>> {
        self.writes.iter().rev().find_map(|w| match w {
            Write::Callback(cb) if cb.id == *id => Some(cb.clone()),
            _ => None,
        })
    }

    /// The writes to commit before anything else leaves. A record saved
    /// several times since the last take (created, then queued) is written
    /// once, as it is now: every save is the whole record.
    pub(super) fn take_writes(&mut self) -> Vec<Write> {
        let mut writes = std::mem::take(&mut self.writes);
        let mut saved = HashSet::new();
        let mut keep = vec![true; writes.len()];
        for (i, w) in writes.iter().enumerate().rev() {
            if let Write::Callback(cb) = w {
                keep[i] = saved.insert(&cb.id);
            }
        }
        let mut keep = keep.into_iter();
        writes.retain(|_| keep.next().unwrap_or(true));
        writes
    }

    pub(super) fn poll_command(&mut self) -> Option<CallCommand> {
        self.commands.pop_front()
    }

    pub(super) fn poll_desktop(&mut self) -> Option<DesktopEvent> {
        self.desktop.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::model::{AgentState, State};
    use crate::callback::CallbackRequest;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn record(id: &str, state: State) -> Callback {
        Callback {
            state,
            ..Callback::new(InteractionId(id.into()), CallbackRequest::default(), now())
        }
    }

    #[test]
    fn a_record_saved_twice_is_written_once_as_it_is_last() {
        let mut out = Output::new(0);
        out.save(&record("cb-1", State::Scheduled));
        out.history(
            &InteractionId("cb-1".into()),
            now(),
            HistoryKind::Created { by: "api".into() },
        );
        out.save(&record("cb-2", State::Queued));
        out.save(&record("cb-1", State::Queued));
        assert_eq!(
            out.last_saved(&InteractionId("cb-1".into()))
                .map(|c| c.state),
            Some(State::Queued)
        );
        let writes = out.take_writes();
        let kinds: Vec<String> = writes
            .iter()
            .map(|w| match w {
                Write::Callback(cb) => format!("{} {}", cb.id, cb.state),
                Write::History(id, _) => format!("history {id}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["history cb-1", "cb-2 queued", "cb-1 queued"]);
        assert!(out.take_writes().is_empty());
        assert_eq!(out.last_saved(&InteractionId("cb-1".into())), None);
    }

    #[test]
    fn desktop_events_are_numbered_on_written_and_queued() {
        let mut out = Output::new(41);
        let agent = |state| DesktopEventKind::Agent {
            agent: "1001".into(),
            state,
            reason: None,
        };
        out.emit(now(), agent(AgentState::Ready));
        out.emit(now(), agent(AgentState::NotReady));
        let written: Vec<u64> = out
            .take_writes()
            .iter()
            .filter_map(|w| match w {
                Write::Desktop(e) => Some(e.seq),
                _ => None,
            })
            .collect();
        assert_eq!(written, [42, 43]);
        assert_eq!(out.poll_desktop().map(|e| e.seq), Some(42));
        assert_eq!(out.poll_desktop().map(|e| e.seq), Some(43));
        assert_eq!(out.poll_desktop(), None);
    }
}
