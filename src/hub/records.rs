//! The one record map: the hub writes every record in it, handles read it without a message.
//!
//! Each id has a [`Slot`]: the record the hub applied, the hub's bookkeeping for it, and the
//! pipelined stores of that id still in the queue. A handle that pipelines a store folds it,
//! under the slot's lock, onto what the id will hold when the hub gets to it (the applied
//! record, or the latest queued store), and queues it under the same lock; a `get` then answers
//! from the slot: the latest queued store if there is one, the applied record otherwise. So a
//! caller reads its own writes without waiting for the hub, and never sees a record the hub
//! will not hold.
//!
//! A fold can only be wrong if something the slot does not track changes the id between the
//! push and the apply: a delete, clear, restore or unpipelined store queued before it, or an
//! expiry. The hub checks each fold against the record it really holds (by pointer) and merges
//! again when they differ; a slot whose queued stores were pushed while such a change was
//! queued, or under a TTL, is marked opaque, and its reads ask the hub.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::one::RefMut;

use crate::compact::CompactRecord;

/// A record as the hub holds and hands it out: shared, unpacked by whoever reads it.
pub(crate) type SharedRecord = Arc<CompactRecord>;

/// Seeded per map, so ids an attacker chooses cannot be made to collide; see docs/design.md
/// for why foldhash.
pub(crate) type IdHasher = foldhash::fast::RandomState;

/// Every record of a hub, by id.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub(crate) map: DashMap<Arc<str>, Slot, IdHasher>,
}

/// One id.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The record as the hub applied it; `None` while the id only has queued stores.
    pub(crate) record: Option<SharedRecord>,
    /// When `result_ttl` or `pending_ttl` removes it.
    pub(crate) expires_at: Option<Instant>,
    /// Numbers the id's first store: breaks listing ties, orders snapshots.
    pub(crate) seq: u64,
    /// Numbers the latest store of the id: eviction takes the terminal record with the
    /// smallest.
    pub(crate) stored: u64,
    /// Pipelined stores of this id not yet applied. Boxed: most slots have none.
    queued: Option<Box<Queued>>,
}

#[derive(Debug)]
struct Queued {
    count: u32,
    /// The last queued store, folded onto the ones before it.
    latest: SharedRecord,
    /// The fold may not be what the hub will hold: reads ask the hub until the queue drains.
    opaque: bool,
}

/// What a pipelined store was folded onto, for the hub to check.
#[derive(Debug)]
pub(crate) struct Fold {
    /// The record the fold took the task fields from (`None`: the id held nothing).
    pub(crate) base: Option<SharedRecord>,
    /// Which task fields came from `base` (see [`CompactRecord::inherit_task_fields`]).
    pub(crate) inherited: u8,
}

/// What a `get` can tell without the hub.
#[derive(Debug)]
pub(crate) enum Read {
    Known(Option<SharedRecord>),
    AskHub,
}

impl Slot {
    pub(crate) fn has_queued(&self) -> bool {
        self.queued.is_some()
    }

    /// The hub applied one of this id's pipelined stores.
    pub(crate) fn dequeue(&mut self) {
        if let Some(queued) = &mut self.queued {
            queued.count -= 1;
            if queued.count == 0 {
                self.queued = None;
            }
        }
    }

    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl Records {
    /// The record a `get` issued now sees, or `AskHub` when only the hub can tell.
    pub(crate) fn read(&self, task_id: &str, now: impl FnOnce() -> Instant) -> Read {
        let Some(slot) = self.map.get(task_id) else {
            return Read::Known(None);
        };
        match &slot.queued {
            Some(queued) if queued.opaque => Read::AskHub,
            Some(queued) => Read::Known(Some(Arc::clone(&queued.latest))),
            None if slot.record.is_some() && slot.is_live(now()) => {
                Read::Known(slot.record.clone())
            }
            None => Read::Known(None),
        }
    }

    /// Folds `record` onto what `task_id` will hold when the hub applies it, then calls `push`
    /// with the id's shared key, the folded record and the fold, all under the id's lock, so
    /// that the stores queued for an id are folded in the order the hub applies them. `push`
    /// says whether the slot must turn opaque; an `Err` from it leaves the slot as it was.
    pub(crate) fn fold_and_queue<E>(
        &self,
        task_id: &str,
        mut record: CompactRecord,
        at: Option<Instant>,
        push: impl FnOnce(Arc<str>, SharedRecord, Fold) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut slot = self.slot_mut(task_id);
        let base = match &slot.queued {
            Some(queued) => Some(Arc::clone(&queued.latest)),
            None => slot
                .record
                .clone()
                .filter(|_| at.is_none_or(|at| slot.is_live(at))),
        };
        let inherited = match &base {
            Some(base) => record.inherit_task_fields(base),
            None => 0,
        };
        let record = Arc::new(record);
        let key = Arc::clone(slot.key());
        let opaque = push(key, Arc::clone(&record), Fold { base, inherited })?;
        match &mut slot.queued {
            Some(queued) => {
                queued.count += 1;
                queued.latest = record;
                queued.opaque |= opaque;
            }
            None => {
                slot.queued = Some(Box::new(Queued {
                    count: 1,
                    latest: record,
                    opaque,
                }));
            }
        }
        Ok(())
    }

    /// The slot of `task_id`, made empty if there is none; allocates the key only then.
    pub(crate) fn slot_mut(&self, task_id: &str) -> RefMut<'_, Arc<str>, Slot> {
        match self.map.get_mut(task_id) {
            Some(slot) => slot,
            None => self.map.entry(Arc::from(task_id)).or_default(),
        }
    }

    /// Removes the slot of `task_id` if it holds neither a record nor queued stores.
    pub(crate) fn remove_if_empty(&self, task_id: &str) {
        self.map.remove_if(task_id, |_, slot| {
            slot.record.is_none() && slot.queued.is_none()
        });
    }
}
