//! Everything the hub holds, and every change to it, as a plain single-threaded state machine.
//!
//! The records live in the shared record map ([`records`](super::records)), which only this
//! state writes; the orders the hub reads them in (listing, eviction, expiry), the waiters and
//! the counts are its own. Records are held packed ([`CompactRecord`]) and shared (`Arc`): a
//! read hands out a pointer, and the caller unpacks it on its own thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;

use super::ops::{Keyed, Reply};
use dashmap::mapref::one::RefMut;

use super::records::{Fold, IdHasher, SharedRecord, Slot};
use super::shared::Shared;
use crate::compact::CompactRecord;
use crate::events::{Backlog, EventBus, EventId, EventKind, RawEvent};
use crate::order::{ListKey, page};
use crate::{BackendError, HubConfig, HubStats, Limit, TaskStatus, validate};

/// Panics if a test armed a fault for this point; expands to nothing without the feature. A
/// macro rather than a method so that it borrows only the `fault` field.
macro_rules! inject_fault {
    ($state:ident, $point:literal) => {
        #[cfg(feature = "fault-injection")]
        if $state.fault == Some($point) {
            $state.fault = None;
            panic!(concat!("fault injected at ", $point));
        }
    };
}

/// The orders the hub reads records in; each maps to the id, which the record map resolves.
#[derive(Debug, Default)]
struct Links {
    /// Per status (indexed by `TaskStatus::index`), the listing order, so a page costs
    /// O(log n + offset + page) instead of a sort of everything.
    by_status: [BTreeMap<ListKey, Arc<str>>; 5],
    /// Terminal records by latest store, oldest first: the eviction order. Kept only when
    /// `max_results` is set.
    terminal_by_store: Option<BTreeMap<u64, Arc<str>>>,
    /// Records with a deadline, soonest first.
    expiry: BTreeMap<(Instant, u64), Arc<str>>,
}

impl Links {
    fn new(config: &HubConfig) -> Self {
        Links {
            terminal_by_store: config.max_results.map(|_| BTreeMap::new()),
            ..Links::default()
        }
    }

    fn link(&mut self, id: &Arc<str>, record: &CompactRecord, slot: &Slot) {
        let key = ListKey {
            submitted_at: record.submitted_at,
            seq: slot.seq,
        };
        self.by_status[record.status.index()].insert(key, Arc::clone(id));
        if let Some(terminal) = &mut self.terminal_by_store {
            if record.is_terminal() {
                terminal.insert(slot.stored, Arc::clone(id));
            }
        }
        if let Some(at) = slot.expires_at {
            self.expiry.insert((at, slot.stored), Arc::clone(id));
        }
    }

    fn unlink(&mut self, record: &CompactRecord, slot: &Slot) {
        if let Some(terminal) = &mut self.terminal_by_store {
            terminal.remove(&slot.stored);
        }
        if let Some(at) = slot.expires_at {
            self.expiry.remove(&(at, slot.stored));
        }
        let key = ListKey {
            submitted_at: record.submitted_at,
            seq: slot.seq,
        };
        self.by_status[record.status.index()].remove(&key);
    }
}

/// The callers waiting for one id; most ids have one, which then needs no vector.
#[derive(Debug)]
enum Waiters {
    One(Reply<SharedRecord>),
    Many(Vec<Reply<SharedRecord>>),
}

impl Waiters {
    fn len(&self) -> usize {
        match self {
            Waiters::One(_) => 1,
            Waiters::Many(waiters) => waiters.len(),
        }
    }

    fn push(&mut self, reply: Reply<SharedRecord>) {
        match self {
            Waiters::One(_) => {
                let Waiters::One(first) = std::mem::replace(self, Waiters::Many(Vec::new())) else {
                    return;
                };
                *self = Waiters::Many(vec![first, reply]);
            }
            Waiters::Many(waiters) => waiters.push(reply),
        }
    }

    /// Drops the waiters whose caller gave up; returns how many, and whether none is left.
    fn prune(&mut self) -> (usize, bool) {
        match self {
            Waiters::One(reply) => (usize::from(reply.is_closed()), reply.is_closed()),
            Waiters::Many(waiters) => {
                let before = waiters.len();
                waiters.retain(|reply| !reply.is_closed());
                (before - waiters.len(), waiters.is_empty())
            }
        }
    }

    fn answer(self, record: &SharedRecord) {
        // A receiver dropped since is being cancelled; its answer is harmless.
        match self {
            Waiters::One(reply) => {
                let _ = reply.send(Ok(Arc::clone(record)));
            }
            Waiters::Many(waiters) => {
                for reply in waiters {
                    let _ = reply.send(Ok(Arc::clone(record)));
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct HubState {
    shared: Arc<Shared>,
    links: Links,
    /// How many records the map holds (it also holds slots of ids with only queued stores).
    len: usize,
    waiters: HashMap<Arc<str>, Waiters, IdHasher>,
    waiter_count: usize,
    next_seq: u64,
    next_store: u64,
    evicted: u64,
    expired: u64,
    /// Task names, shared by every record of the same task.
    names: HashSet<Arc<str>>,
    /// Subscribers' events; dropped with the state, which ends every subscription.
    events: EventBus,
    /// The operation whose next call panics, for the fault-injection tests.
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<&'static str>,
}

impl HubState {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        HubState {
            links: Links::new(&shared.config),
            events: EventBus::new(&shared.config),
            shared,
            len: 0,
            waiters: HashMap::default(),
            waiter_count: 0,
            next_seq: 0,
            next_store: 0,
            evicted: 0,
            expired: 0,
            names: HashSet::new(),
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn waiter_count(&self) -> usize {
        self.waiter_count
    }

    /// Removes every record whose deadline has passed. Every operation calls it first, so an
    /// expired record is never observed, whether or not a sweep has run since.
    pub(crate) fn expire_due(&mut self) {
        self.expire_due_at(None);
    }

    /// `expire_due` as of `at` (default: now). A store is applied as of when it was made, so
    /// a record it refreshes in time is not expired by the delay in the queue.
    fn expire_due_at(&mut self, at: Option<Instant>) {
        let Some((&(first, _), _)) = self.links.expiry.first_key_value() else {
            return;
        };
        let now = at.unwrap_or_else(|| self.config().clock.now());
        if first > now {
            return;
        }
        while let Some(entry) = self.links.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if self.remove_record(&id, EventKind::Expired).is_some() {
                self.expired += 1;
            }
        }
        self.shrink_if_sparse();
    }

    fn remove_record(&mut self, task_id: &str, kind: EventKind) -> Option<SharedRecord> {
        let records = &self.shared.records;
        let (id, record) = {
            let mut slot = records.map.get_mut(task_id)?;
            let record = slot.record.clone()?;
            self.links.unlink(&record, &slot);
            slot.record = None;
            slot.expires_at = None;
            (Arc::clone(slot.key()), record)
        };
        records.remove_if_empty(task_id);
        self.len -= 1;
        self.events
            .emit(kind, &id, &record, &self.shared.config.clock);
        Some(record)
    }

    /// Stores `record` under `task_id` and returns it as stored (task fields merged from the
    /// previous record). `fold` is set for a pipelined store, whose handle merged it already;
    /// it is checked, and merged again if the id changed under it.
    pub(crate) fn store(
        &mut self,
        task_id: &Arc<str>,
        mut record: SharedRecord,
        at: Option<Instant>,
        fold: Option<Fold>,
    ) -> Result<SharedRecord, BackendError> {
        let shared = Arc::clone(&self.shared);
        if fold.is_none() {
            validate::waitable_id(task_id, &shared.config)?;
        }
        if record.has_task_name() {
            if let Some(unshared) = Arc::get_mut(&mut record) {
                unshared.intern_task_name(&mut self.names);
            }
        }
        self.expire_due_at(at);
        let mut slot = slot_of(&shared, task_id);
        let pipelined = fold.is_some();
        if pipelined {
            slot.dequeue();
        }
        let previous = slot.record.clone();
        let admitted = match fold {
            Some(fold) => {
                refold(&mut record, fold, previous.as_ref());
                Ok(())
            }
            None => self.admit(task_id, &mut record, previous.as_ref()),
        };
        if let Err(error) = admitted {
            drop(slot);
            shared.records.remove_if_empty(task_id);
            return Err(error);
        }
        let full = |len| shared.config.max_results.is_some_and(|max| len >= max);
        if previous.is_none() && full(self.len) {
            drop(slot);
            if let Err(error) = self.make_room(&HashSet::new()) {
                shared.records.remove_if_empty(task_id);
                return Err(error);
            }
            slot = slot_of(&shared, task_id);
        }
        Ok(self.apply_store(slot, record, at))
    }

    /// The policy and size checks an unpipelined store must pass, changing nothing but the
    /// record, which takes the task fields of `previous`.
    fn admit(
        &self,
        task_id: &str,
        record: &mut SharedRecord,
        previous: Option<&SharedRecord>,
    ) -> Result<(), BackendError> {
        if let Some(previous) = previous {
            validate::terminal_policy(task_id, Some(previous.status), self.config())?;
            Arc::make_mut(record).inherit_task_fields(previous);
        }
        record.check_size(task_id, self.config())
    }

    /// Under `max_results`, evicts the terminal record whose latest store is oldest (skipping
    /// `keep`) so that a new id fits; refuses when no record can go.
    fn make_room(&mut self, keep: &HashSet<&str>) -> Result<(), BackendError> {
        let Some(max) = self.config().max_results else {
            return Ok(());
        };
        while self.len >= max {
            let oldest = self
                .links
                .terminal_by_store
                .as_ref()
                .and_then(|terminal| terminal.values().find(|id| !keep.contains(&***id)))
                .map(Arc::clone);
            let Some(oldest) = oldest else {
                return Err(BackendError::overloaded(
                    Limit::MaxResults,
                    max,
                    self.len,
                    format!(
                        "{} records, at max_results ({max}), and none can be evicted",
                        self.len
                    ),
                ));
            };
            // Reported as expired: the hub's retention rules removed it, not a caller.
            self.remove_record(&oldest, EventKind::Expired);
            self.evicted += 1;
            tracing::debug!(task_id = %oldest, "resulthub.hub.evict");
        }
        Ok(())
    }

    /// Stores a record that passed every check into its slot: cannot fail; returns it as
    /// stored. `at` is when the caller stored it, if it says; TTLs count from then.
    fn apply_store(
        &mut self,
        mut slot: RefMut<'_, Arc<str>, Slot>,
        record: SharedRecord,
        at: Option<Instant>,
    ) -> SharedRecord {
        let stored = self.next_store;
        self.next_store += 1;
        let clock = &self.shared.config.clock;
        let expires_at = self
            .shared
            .config
            .ttl(record.is_terminal())
            .and_then(|ttl| at.unwrap_or_else(|| clock.now()).checked_add(ttl));
        let id = Arc::clone(slot.key());
        match slot.record.clone() {
            Some(previous) => {
                self.links.unlink(&previous, &slot);
                // Mid-change on purpose: the test checks that `repair` restores the links.
                inject_fault!(self, "store");
            }
            None => {
                slot.seq = self.next_seq;
                self.next_seq += 1;
                self.len += 1;
            }
        }
        slot.record = Some(Arc::clone(&record));
        slot.stored = stored;
        slot.expires_at = expires_at;
        self.links.link(&id, &record, &slot);
        // Released before anyone is told: readers on other threads wait on it.
        drop(slot);
        self.events.emit(EventKind::Stored, &id, &record, clock);
        if record.is_terminal() && !self.waiters.is_empty() {
            if let Some(waiters) = self.waiters.remove(&id) {
                self.waiter_count -= waiters.len();
                waiters.answer(&record);
                shrink_if_sparse(&mut self.waiters);
            }
        }
        record
    }

    pub(crate) fn get(&mut self, task_id: &str) -> Result<Option<SharedRecord>, BackendError> {
        validate::id_length(task_id, self.config())?;
        self.expire_due();
        inject_fault!(self, "get");
        Ok(self
            .shared
            .records
            .map
            .get(task_id)
            .and_then(|slot| slot.record.clone()))
    }

    /// The first step of a `wait_for`, which may refuse: the record if it is terminal
    /// already; `None` if the caller must wait, and there is room for one more waiter.
    pub(crate) fn wait_for(&mut self, task_id: &str) -> Result<Option<SharedRecord>, BackendError> {
        validate::waitable_id(task_id, self.config())?;
        self.expire_due();
        inject_fault!(self, "wait_for");
        let record = self
            .shared
            .records
            .map
            .get(task_id)
            .and_then(|slot| slot.record.clone());
        if let Some(record) = record.filter(|record| record.is_terminal()) {
            return Ok(Some(record));
        }
        if let Some(max) = self.config().max_waiters {
            if self.waiter_count >= max {
                let reason = format!("{} waiters, at max_waiters ({max})", self.waiter_count);
                return Err(BackendError::overloaded(
                    Limit::MaxWaiters,
                    max,
                    self.waiter_count,
                    reason,
                ));
            }
        }
        Ok(None)
    }

    /// The second step: keeps `reply` until a terminal store of `task_id`.
    pub(crate) fn add_waiter(&mut self, task_id: Arc<str>, reply: Reply<SharedRecord>) {
        if reply.is_closed() {
            // The caller gave up while this was queued.
            return;
        }
        match self.waiters.get_mut(&task_id) {
            Some(waiters) => waiters.push(reply),
            None => {
                self.waiters.insert(task_id, Waiters::One(reply));
            }
        }
        self.waiter_count += 1;
    }

    /// Drops the waiters of `task_id` whose caller gave up.
    pub(crate) fn cancel_wait(&mut self, task_id: &str) {
        let Some(waiters) = self.waiters.get_mut(task_id) else {
            return;
        };
        let (pruned, none_left) = waiters.prune();
        self.waiter_count -= pruned;
        if none_left {
            self.waiters.remove(task_id);
            shrink_if_sparse(&mut self.waiters);
        }
    }

    pub(crate) fn delete(&mut self, task_id: &str) -> Result<bool, BackendError> {
        validate::id_length(task_id, self.config())?;
        self.expire_due();
        inject_fault!(self, "delete");
        let existed = self.remove_record(task_id, EventKind::Deleted).is_some();
        self.shrink_if_sparse();
        Ok(existed)
    }

    pub(crate) fn clear(&mut self) -> usize {
        self.expire_due();
        inject_fault!(self, "clear");
        let removed = self.len;
        let mut cleared = Vec::new();
        let emit = self.events.active();
        // Slots with stores still queued stay, empty: those stores come after the clear.
        self.shared.records.map.retain(|id, slot| {
            if let Some(record) = slot.record.take() {
                if emit {
                    cleared.push((slot.seq, Arc::clone(id), record));
                }
            }
            slot.expires_at = None;
            slot.has_queued()
        });
        self.shared.records.map.shrink_to_fit();
        cleared.sort_unstable_by_key(|(seq, _, _)| *seq);
        for (_, id, record) in &cleared {
            self.events
                .emit(EventKind::Cleared, id, record, &self.shared.config.clock);
        }
        drop(cleared);
        self.links = Links::new(self.config());
        self.len = 0;
        // Names no record uses any more: the records are gone by now.
        self.names.retain(|name| Arc::strong_count(name) > 1);
        removed
    }

    pub(crate) fn list_by_status(
        &mut self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<Keyed> {
        self.expire_due();
        inject_fault!(self, "list_by_status");
        // Page the ids first: the skipped ones cost a step through the index, nothing more.
        let ids = page(self.links.by_status[status.index()].values(), limit, offset);
        let map = &self.shared.records.map;
        ids.into_iter()
            .filter_map(|id| {
                let record = map.get(&**id)?.record.clone()?;
                Some((Arc::clone(id), record))
            })
            .collect()
    }

    /// At most `limit` records after the position `after` (from the first when `None`), by
    /// a range of the status's index: O(log n + limit) at any depth. Also the position of
    /// the page's last record when more follow it.
    pub(crate) fn list_page(
        &mut self,
        status: TaskStatus,
        limit: usize,
        after: Option<ListKey>,
    ) -> (Vec<Keyed>, Option<ListKey>) {
        self.expire_due();
        inject_fault!(self, "list_by_status");
        let index = &self.links.by_status[status.index()];
        let entries: Box<dyn Iterator<Item = (&ListKey, &Arc<str>)>> = match after {
            Some(after) => Box::new(index.range((Bound::Excluded(after), Bound::Unbounded))),
            None => Box::new(index.iter()),
        };
        let mut entries: Vec<_> = entries.take(limit.saturating_add(1)).collect();
        let next = (entries.len() > limit).then(|| {
            entries.truncate(limit);
            entries.last().map(|(key, _)| **key)
        });
        let map = &self.shared.records.map;
        let records = entries
            .into_iter()
            .filter_map(|(_, id)| {
                let record = map.get(&**id)?.record.clone()?;
                Some((Arc::clone(id), record))
            })
            .collect();
        (records, next.flatten())
    }

    pub(crate) fn stats(&mut self) -> HubStats {
        self.expire_due();
        inject_fault!(self, "stats");
        let mut stats = HubStats {
            results: self.len,
            waiters: self.waiter_count,
            subscribers: self.events.subscribers(),
            evicted: self.evicted,
            expired: self.expired,
            ..HubStats::default()
        };
        for status in TaskStatus::ALL {
            *stats.by_status.slot(status) = self.links.by_status[status.index()].len();
        }
        stats
    }

    /// A new subscription to the events of every change from now on; a resumable one first
    /// gets what is held after `after`.
    pub(crate) fn subscribe(
        &mut self,
        resumable: bool,
        after: Option<EventId>,
    ) -> (Backlog, broadcast::Receiver<RawEvent>) {
        if resumable {
            self.events.subscribe_after(after)
        } else {
            (Backlog::default(), self.events.subscribe())
        }
    }

    /// Every record, in the order their ids were first stored.
    pub(crate) fn snapshot(&mut self) -> Vec<Keyed> {
        self.expire_due();
        inject_fault!(self, "snapshot");
        let mut records: Vec<(u64, Keyed)> = self
            .shared
            .records
            .map
            .iter()
            .filter_map(|slot| {
                let record = slot.record.clone()?;
                Some((slot.seq, (Arc::clone(slot.key()), record)))
            })
            .collect();
        records.sort_unstable_by_key(|(seq, _)| *seq);
        records.into_iter().map(|(_, keyed)| keyed).collect()
    }

    /// Stores `records` in order, all or none: every record is checked against the rules and
    /// limits a store would apply before the first is stored.
    pub(crate) fn restore(
        &mut self,
        records: Vec<(Arc<str>, CompactRecord)>,
    ) -> Result<usize, BackendError> {
        self.expire_due();
        inject_fault!(self, "restore");
        self.check_restore(&records)?;
        let count = records.len();
        let ids: Vec<Arc<str>> = records.iter().map(|(id, _)| Arc::clone(id)).collect();
        let keep: HashSet<&str> = ids.iter().map(|id| &**id).collect();
        for (task_id, mut record) in records {
            // Checked above: these cannot refuse. Room comes from records outside the restore.
            let previous = self
                .shared
                .records
                .map
                .get(&*task_id)
                .and_then(|slot| slot.record.clone());
            match previous {
                Some(previous) => {
                    record.inherit_task_fields(&previous);
                }
                None => self.make_room(&keep)?,
            }
            record.intern_task_name(&mut self.names);
            let shared = Arc::clone(&self.shared);
            let slot = shared.records.map.entry(task_id).or_default();
            self.apply_store(slot, Arc::new(record), None);
        }
        Ok(count)
    }

    /// Dry-runs `restore`: the merged record of each id, the terminal policy, the sizes, and
    /// room under `max_results` without evicting anything the restore itself stores.
    fn check_restore(&self, records: &[(Arc<str>, CompactRecord)]) -> Result<(), BackendError> {
        let map = &self.shared.records.map;
        let held = |id: &str| map.get(id).and_then(|slot| slot.record.clone());
        let mut merged: HashMap<&str, CompactRecord> = HashMap::new();
        for (position, (id, record)) in records.iter().enumerate() {
            let at = |error: BackendError| error.in_context(&format!("record {position}"));
            validate::waitable_id(id, self.config()).map_err(at)?;
            let previous = merged
                .get(&**id)
                .cloned()
                .or_else(|| held(id).map(Arc::unwrap_or_clone));
            let mut next = record.clone();
            if let Some(previous) = &previous {
                validate::terminal_policy(id, Some(previous.status), self.config())?;
                next.inherit_task_fields(previous);
            }
            next.check_size(id, self.config()).map_err(at)?;
            merged.insert(&**id, next);
        }
        if let Some(max) = self.config().max_results {
            let new_ids = merged.keys().filter(|id| held(id).is_none()).count();
            let evictable = map
                .iter()
                .filter(|slot| {
                    slot.record
                        .as_ref()
                        .is_some_and(|record| record.is_terminal())
                        && !merged.contains_key(&**slot.key())
                })
                .count();
            let free = max.saturating_sub(self.len);
            if new_ids > free + evictable {
                return Err(BackendError::overloaded(
                    Limit::MaxResults,
                    max,
                    (self.len + new_ids).saturating_sub(evictable),
                    format!("restoring {new_ids} new ids needs room beyond max_results ({max})"),
                ));
            }
        }
        Ok(())
    }

    /// Rebuilds every derived structure from the record map and the waiters, after a handler
    /// panicked midway through a change. The map itself is never emptied, so readers on other
    /// threads see every record throughout.
    pub(crate) fn repair(&mut self) {
        let mut links = Links::new(self.config());
        let mut len = 0;
        for slot in self.shared.records.map.iter() {
            if let Some(record) = &slot.record {
                links.link(slot.key(), record, &slot);
                len += 1;
            }
        }
        self.links = links;
        self.len = len;
        self.waiter_count = self.waiters.values().map(Waiters::len).sum();
    }

    fn shrink_if_sparse(&mut self) {
        let map = &self.shared.records.map;
        if map.capacity() > MIN_CAPACITY && map.len() < map.capacity() / 4 {
            map.shrink_to_fit();
        }
    }
}

/// Makes a pipelined store's record what the hub would have merged: when the id no longer
/// holds the record the handle folded it onto, the inherited task fields are taken again.
fn refold(record: &mut SharedRecord, fold: Fold, held: Option<&SharedRecord>) {
    let same = match (&fold.base, held) {
        (Some(base), Some(held)) => Arc::ptr_eq(base, held),
        (None, None) => true,
        _ => false,
    };
    if !same {
        // Drops our hold on the old base first, so that `make_mut` copies only if it must.
        drop(fold.base);
        let merged = Arc::make_mut(record);
        merged.forget_inherited(fold.inherited);
        if let Some(held) = held {
            merged.inherit_task_fields(held);
        }
    }
}

/// The slot of `task_id`, made empty if there is none. A pipelined store finds the slot its
/// handle made, so the key is cloned only when it is not there.
fn slot_of<'a>(shared: &'a Shared, task_id: &Arc<str>) -> RefMut<'a, Arc<str>, Slot> {
    match shared.records.map.get_mut(&**task_id) {
        Some(slot) => slot,
        None => shared.records.map.entry(Arc::clone(task_id)).or_default(),
    }
}

/// Below this many places a map is not worth shrinking.
const MIN_CAPACITY: usize = 1024;

/// Gives memory back once a map is mostly empty, so a burst of records or waiters does not
/// pin its peak size forever. Halving only below a quarter keeps the cost amortized O(1).
fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V, IdHasher>) {
    if map.capacity() > MIN_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskResult;

    fn state(config: HubConfig) -> HubState {
        HubState::new(Arc::new(Shared::new(config)))
    }

    fn store(state: &mut HubState, id: &str, record: TaskResult) {
        let record = Arc::new(CompactRecord::pack(record));
        state.store(&Arc::from(id), record, None, None).unwrap();
    }

    #[test]
    fn index_follows_status_changes_and_deletes() {
        let mut state = state(HubConfig::default());
        store(&mut state, "a", TaskResult::new("a", TaskStatus::Pending));
        store(&mut state, "a", TaskResult::new("a", TaskStatus::Running));
        let stats = state.stats();
        assert_eq!((stats.by_status.pending, stats.by_status.running), (0, 1));
        assert!(state.delete("a").unwrap());
        assert!(state.links.by_status.iter().all(BTreeMap::is_empty));
        assert!(state.shared.records.map.is_empty());
    }

    #[test]
    fn cancelled_waiters_leave_no_entry() {
        let mut state = state(HubConfig::default());
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let (reply, receiver) = tokio::sync::oneshot::channel();
                assert!(state.wait_for("a").unwrap().is_none());
                state.add_waiter(Arc::from("a"), reply);
                receiver
            })
            .collect();
        assert_eq!(state.waiter_count, 3);
        drop(receivers);
        state.cancel_wait("a");
        state.cancel_wait("a");
        assert_eq!(state.waiter_count, 0);
        assert!(state.waiters.is_empty());
    }

    #[test]
    fn clear_forgets_task_names_no_record_uses() {
        let mut state = state(HubConfig::default());
        for n in 0..10 {
            let id = format!("t{n}");
            let record =
                TaskResult::new(&id, TaskStatus::Success).with_task_name(format!("job{n}"));
            store(&mut state, &id, record);
        }
        assert_eq!(state.names.len(), 10);
        assert_eq!(state.clear(), 10);
        assert!(state.names.is_empty(), "{} names kept", state.names.len());
    }

    #[test]
    fn maps_give_memory_back_after_a_burst() {
        let mut state = state(HubConfig::default());
        let mut receivers = Vec::new();
        for n in 0..10_000 {
            let (reply, receiver) = tokio::sync::oneshot::channel();
            state.add_waiter(Arc::from(format!("t{n}")), reply);
            receivers.push(receiver);
            let stored = format!("r{n}");
            store(
                &mut state,
                &stored,
                TaskResult::new(&stored, TaskStatus::Success),
            );
        }
        let peak = (
            state.waiters.capacity(),
            state.shared.records.map.capacity(),
        );
        drop(receivers);
        for n in 0..10_000 {
            state.cancel_wait(&format!("t{n}"));
            assert!(state.delete(&format!("r{n}")).unwrap());
        }
        assert!(state.waiters.capacity() < peak.0 / 4);
        assert!(state.shared.records.map.capacity() < peak.1 / 4);
    }
}
