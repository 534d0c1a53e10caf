//! A read view of the hub's records that callers read without a message, for `get`.
//!
//! The hub is its only writer: it mirrors every change to its records here. A handle that
//! pipelines a store (returns before the hub applied it) notes the store here, under the same
//! lock in which it queues it, so that a `get` answers with the applied record plus the stores
//! still queued for that id, folded the way the hub will apply them. A caller thus reads its own
//! writes without waiting for the hub, and never sees a state the hub will not have.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;

use crate::HubConfig;
use crate::compact::CompactRecord;
use crate::hub::state::SharedRecord;

#[derive(Debug, Default)]
pub(crate) struct View {
    slots: DashMap<Arc<str>, Slot>,
    next_ticket: AtomicU64,
    /// Changes queued to the hub that the view does not track (deletes, clears, restores,
    /// stores that wait for their answer): while any is queued, a `get` asks the hub, as the
    /// view cannot tell how they will change what it holds.
    unseen: AtomicUsize,
}

/// One id: the record the hub holds, and the stores queued for it, oldest first. Kept small
/// (32 bytes): there is one per record, and most have nothing queued.
#[derive(Debug, Default)]
struct Slot {
    applied: Option<SharedRecord>,
    expires_at: Option<Instant>,
    /// Boxed: most slots never queue anything, and a slot stays 32 bytes.
    queued: Option<Box<Queue>>,
}

/// The stores queued for one id: usually one, which then needs no second allocation.
#[derive(Debug)]
enum Queue {
    One(Queued),
    Many(VecDeque<Queued>),
}

impl Queue {
    fn iter(&self) -> impl Iterator<Item = &Queued> {
        let (one, many) = match self {
            Queue::One(queued) => (Some(queued), None),
            Queue::Many(queued) => (None, Some(queued.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn push(&mut self, next: Queued) {
        match self {
            Queue::Many(queued) => queued.push_back(next),
            Queue::One(_) => {
                let Queue::One(first) = std::mem::replace(self, Queue::Many(VecDeque::new()))
                else {
                    return;
                };
                if let Queue::Many(queued) = self {
                    queued.push_back(first);
                    queued.push_back(next);
                }
            }
        }
    }

    /// Removes a ticket; true when nothing is left.
    fn remove(&mut self, ticket: u64) -> bool {
        match self {
            Queue::One(queued) => queued.ticket == ticket,
            Queue::Many(queued) => {
                // Almost always the oldest: the hub applies an id's stores in queue order.
                if queued.front().is_some_and(|front| front.ticket == ticket) {
                    queued.pop_front();
                } else if let Some(position) = queued.iter().position(|q| q.ticket == ticket) {
                    queued.remove(position);
                }
                queued.is_empty()
            }
        }
    }
}

impl Slot {
    fn is_idle(&self) -> bool {
        self.queued.is_none()
    }

    fn remove_ticket(&mut self, ticket: u64) {
        if self
            .queued
            .as_mut()
            .is_some_and(|queued| queued.remove(ticket))
        {
            self.queued = None;
        }
    }
}

#[derive(Debug)]
struct Queued {
    ticket: u64,
    record: SharedRecord,
    /// When the caller stored it, when TTLs are set.
    at: Option<Instant>,
}

impl View {
    /// Notes a pipelined store and queues it with `send`, under the id's lock, so that the
    /// stores noted for an id are in the order the hub will apply them.
    pub(crate) fn enqueue(
        &self,
        task_id: &str,
        record: SharedRecord,
        at: Option<Instant>,
        send: impl FnOnce(u64),
    ) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let mut slot = match self.slots.get_mut(task_id) {
            Some(slot) => slot,
            None => self.slots.entry(Arc::from(task_id)).or_default(),
        };
        let next = Queued { ticket, record, at };
        match &mut slot.queued {
            Some(queued) => queued.push(next),
            None => slot.queued = Some(Box::new(Queue::One(next))),
        }
        send(ticket);
    }

    /// A change the view does not track is about to be queued.
    pub(crate) fn unseen(&self) {
        self.unseen.fetch_add(1, Ordering::SeqCst);
    }

    /// The hub handled such a change (and has updated the view).
    pub(crate) fn seen(&self) {
        self.unseen.fetch_sub(1, Ordering::SeqCst);
    }

    /// The record a `get` issued now sees: the applied one, with the queued stores folded in;
    /// `Err(())` when only the hub can tell (an untracked change is queued, or a queued store
    /// races an expiry).
    pub(crate) fn read(
        &self,
        task_id: &str,
        config: &HubConfig,
    ) -> Result<Option<SharedRecord>, ()> {
        if self.unseen.load(Ordering::SeqCst) > 0 {
            return Err(());
        }
        let Some(slot) = self.slots.get(task_id) else {
            return Ok(None);
        };
        let has_ttl = config.result_ttl.is_some() || config.pending_ttl.is_some();
        if has_ttl && !slot.is_idle() {
            // The hub expires records as of when it handles each call, which the view cannot
            // foresee for the calls queued ahead of these stores.
            return Err(());
        }
        let now = || config.clock.now();
        let live = |expires_at: Option<Instant>, at: Instant| expires_at.is_none_or(|x| x > at);
        let mut current = slot.applied.clone().map(|record| (record, slot.expires_at));
        for queued in slot.queued.iter().flat_map(|queued| queued.iter()) {
            let at = queued.at;
            let base = current
                .take()
                .filter(|(_, expires_at)| live(*expires_at, at.unwrap_or_else(now)));
            let record = match base {
                Some((base, _)) => {
                    let mut record = CompactRecord::clone(&queued.record);
                    record.inherit_task_fields(&base);
                    Arc::new(record)
                }
                None => Arc::clone(&queued.record),
            };
            let expires_at = config
                .ttl(record.is_complete())
                .and_then(|ttl| at.unwrap_or_else(now).checked_add(ttl));
            current = Some((record, expires_at));
        }
        Ok(current
            .filter(|(_, expires_at)| live(*expires_at, now()))
            .map(|(record, _)| record))
    }

    /// The hub applied a store (`ticket`: a pipelined one, now no longer queued).
    pub(crate) fn applied(
        &self,
        id: &Arc<str>,
        record: &SharedRecord,
        expires_at: Option<Instant>,
        ticket: Option<u64>,
    ) {
        let mut slot = match self.slots.get_mut(&**id) {
            Some(slot) => slot,
            None => self.slots.entry(Arc::clone(id)).or_default(),
        };
        slot.applied = Some(Arc::clone(record));
        slot.expires_at = expires_at;
        if let Some(ticket) = ticket {
            slot.remove_ticket(ticket);
        }
    }

    /// A pipelined store the hub did not apply (it had stopped, or its handler panicked).
    pub(crate) fn forget(&self, task_id: &str, ticket: u64) {
        self.slots.remove_if_mut(task_id, |_, slot| {
            slot.remove_ticket(ticket);
            slot.applied.is_none() && slot.is_idle()
        });
    }

    /// The hub removed the record (delete, expiry, eviction).
    pub(crate) fn removed(&self, task_id: &str) {
        self.slots.remove_if_mut(task_id, |_, slot| {
            slot.applied = None;
            slot.is_idle()
        });
    }

    /// The hub removed every record; stores queued after the clear stay noted.
    pub(crate) fn cleared(&self) {
        self.slots.retain(|_, slot| {
            slot.applied = None;
            !slot.is_idle()
        });
        self.slots.shrink_to_fit();
    }

    /// The hub stopped for good: nothing is left to read.
    pub(crate) fn clear_all(&self) {
        self.slots.clear();
        self.slots.shrink_to_fit();
    }

    /// The hub rebuilt its state: mirror exactly what it holds.
    pub(crate) fn rebuild<'a>(
        &self,
        records: impl Iterator<Item = (&'a Arc<str>, &'a SharedRecord, Option<Instant>)>,
    ) {
        self.slots.retain(|_, slot| {
            slot.applied = None;
            !slot.is_idle()
        });
        for (id, record, expires_at) in records {
            self.applied(id, record, expires_at, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Clock, ManualClock, TaskResult, TaskStatus};

    fn packed(record: TaskResult) -> SharedRecord {
        Arc::new(CompactRecord::pack(record))
    }

    #[test]
    fn queued_stores_fold_over_the_applied_record_as_the_hub_applies_them() {
        let view = View::default();
        let config = HubConfig::default();
        let id: Arc<str> = Arc::from("a");
        let first = packed(TaskResult::new("a", TaskStatus::Pending).with_task_name("job"));
        view.applied(&id, &first, None, None);
        let mut sent = Vec::new();
        view.enqueue(
            "a",
            packed(TaskResult::new("a", TaskStatus::Running)),
            None,
            |t| sent.push(t),
        );
        let read = view
            .read("a", &config)
            .unwrap()
            .unwrap()
            .unpack("a")
            .unwrap();
        assert_eq!(read.status, TaskStatus::Running);
        assert_eq!(read.task_name.as_deref(), Some("job"));
        // Applied: no longer queued, same answer.
        let applied = Arc::new(CompactRecord::pack(read.clone()));
        view.applied(&id, &applied, None, Some(sent[0]));
        assert_eq!(
            view.read("a", &config)
                .unwrap()
                .unwrap()
                .unpack("a")
                .unwrap(),
            read
        );
        assert!(view.slots.get("a").unwrap().is_idle());
        // A forgotten store leaves nothing behind; a removed record reads as none.
        view.enqueue(
            "b",
            packed(TaskResult::new("b", TaskStatus::Running)),
            None,
            |t| sent.push(t),
        );
        view.forget("b", sent[1]);
        assert!(view.slots.get("b").is_none());
        view.removed("a");
        assert!(view.read("a", &config).unwrap().is_none());
        assert!(view.slots.is_empty());
    }

    #[test]
    fn with_a_ttl_a_queued_store_defers_to_the_hub() {
        let clock = ManualClock::new();
        let config = HubConfig {
            result_ttl: Some(Duration::from_secs(5)),
            pending_ttl: Some(Duration::from_secs(5)),
            clock: Clock::from(clock.clone()),
            ..HubConfig::default()
        };
        let view = View::default();
        let id: Arc<str> = Arc::from("a");
        let base = packed(TaskResult::new("a", TaskStatus::Pending).with_task_name("job"));
        view.applied(
            &id,
            &base,
            Some(config.clock.now() + Duration::from_secs(5)),
            None,
        );
        clock.advance(Duration::from_secs(6));
        let at = Some(config.clock.now());
        view.enqueue(
            "a",
            packed(TaskResult::new("a", TaskStatus::Running)),
            at,
            |_| {},
        );
        // With a TTL and a store queued, the hub's timing decides: only it can answer.
        assert!(view.read("a", &config).is_err());
    }
}
