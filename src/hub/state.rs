//! Everything the hub holds, as a plain single-threaded state machine.
//!
//! The actor in `hub/mod.rs` only routes messages here. Keeping the state free of actix makes
//! every rule checkable without a System, and keeps each handler a small, non-blocking change.
//! Records are held packed ([`CompactRecord`]) and shared (`Arc`): a read hands out a pointer,
//! and the caller unpacks it on its own thread, so the hub's one thread does no JSON work.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::compact::CompactRecord;
use crate::events::{EventBus, EventKind, RawEvent};
use crate::hub::view::View;
use crate::order::{ListKey, page};
use crate::{BackendError, HubConfig, HubStats, TaskStatus, validate};

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

/// A record as the hub hands it out: shared, unpacked by whoever reads it.
pub(crate) type SharedRecord = Arc<CompactRecord>;

/// A record with its id, as listings and snapshots return them.
pub(crate) type Keyed = (Arc<str>, SharedRecord);

/// One stored record and its bookkeeping.
#[derive(Debug)]
struct Entry {
    record: SharedRecord,
    /// Numbers the id's first store: breaks listing ties, orders snapshots.
    seq: u64,
    /// Numbers the latest store of the id: eviction takes the terminal record with the
    /// smallest.
    stored: u64,
    /// When `result_ttl` or `pending_ttl` removes it.
    expires_at: Option<Instant>,
}

impl Entry {
    fn list_key(&self) -> ListKey {
        ListKey {
            submitted_at: self.record.submitted_at,
            seq: self.seq,
        }
    }
}

/// The orders the hub reads records in; each maps to the id, which `records` resolves.
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

    fn link(&mut self, id: &Arc<str>, entry: &Entry) {
        self.by_status[entry.record.status.index()].insert(entry.list_key(), Arc::clone(id));
        if let Some(terminal) = &mut self.terminal_by_store {
            if entry.record.is_complete() {
                terminal.insert(entry.stored, Arc::clone(id));
            }
        }
        if let Some(at) = entry.expires_at {
            self.expiry.insert((at, entry.stored), Arc::clone(id));
        }
    }

    fn unlink(&mut self, entry: &Entry) {
        if let Some(terminal) = &mut self.terminal_by_store {
            terminal.remove(&entry.stored);
        }
        if let Some(at) = entry.expires_at {
            self.expiry.remove(&(at, entry.stored));
        }
        self.by_status[entry.record.status.index()].remove(&entry.list_key());
    }
}

/// The callers waiting for one id. Most ids have one waiter, which then needs no map; many
/// waiters are keyed by waiter id, so that one giving up is removed in O(1).
#[derive(Debug)]
enum Waiters {
    One(u64, oneshot::Sender<SharedRecord>),
    // Boxed: an id's entry is then 16 bytes, not the 48 of an inline map, for the common case.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<u64, oneshot::Sender<SharedRecord>>>),
}

impl Waiters {
    fn len(&self) -> usize {
        match self {
            Waiters::One(..) => 1,
            Waiters::Many(waiters) => waiters.len(),
        }
    }

    fn push(&mut self, waiter_id: u64, sender: oneshot::Sender<SharedRecord>) {
        match self {
            Waiters::One(..) => {
                let Waiters::One(first_id, first) =
                    std::mem::replace(self, Waiters::Many(Box::new(HashMap::with_capacity(2))))
                else {
                    return;
                };
                if let Waiters::Many(waiters) = self {
                    waiters.insert(first_id, first);
                    waiters.insert(waiter_id, sender);
                }
            }
            Waiters::Many(waiters) => {
                waiters.insert(waiter_id, sender);
            }
        }
    }

    /// Removes one waiter; true if it was there.
    fn remove(&mut self, waiter_id: u64) -> bool {
        match self {
            Waiters::One(id, _) => *id == waiter_id,
            Waiters::Many(waiters) => waiters.remove(&waiter_id).is_some(),
        }
    }

    fn is_empty_after_remove(&self, removed_only: bool) -> bool {
        match self {
            Waiters::One(..) => removed_only,
            Waiters::Many(waiters) => waiters.is_empty(),
        }
    }

    fn answer(self, record: &SharedRecord) {
        // A receiver dropped since is being cancelled; its message is harmless.
        match self {
            Waiters::One(_, sender) => {
                let _ = sender.send(Arc::clone(record));
            }
            Waiters::Many(waiters) => {
                for sender in waiters.into_values() {
                    let _ = sender.send(Arc::clone(record));
                }
            }
        }
    }
}

/// What `register_waiter` found.
#[derive(Debug)]
pub(crate) enum Registration {
    /// The record is terminal already.
    Ready(SharedRecord),
    /// A waiter was registered under this id; the receiver gets the next terminal record.
    Waiting {
        task_id: Arc<str>,
        waiter_id: u64,
        receiver: oneshot::Receiver<SharedRecord>,
    },
}

#[derive(Debug)]
pub(crate) struct HubState {
    config: HubConfig,
    records: HashMap<Arc<str>, Entry>,
    links: Links,
    waiters: HashMap<Arc<str>, Waiters>,
    waiter_count: usize,
    next_seq: u64,
    next_store: u64,
    next_waiter_id: u64,
    evicted: u64,
    expired: u64,
    /// The read view handles read `get` from, when stores are pipelined; kept current here.
    view: Option<Arc<View>>,
    /// Task names, shared by every record of the same task.
    names: HashSet<Arc<str>>,
    /// Subscribers' events; dropped with the state, which ends every subscription.
    events: EventBus,
    /// The operation whose next call panics, for the fault-injection tests.
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<&'static str>,
}

impl HubState {
    pub(crate) fn new(config: HubConfig, view: Option<Arc<View>>) -> Self {
        HubState {
            view,
            names: HashSet::new(),
            events: EventBus::new(&config),
            links: Links::new(&config),
            config,
            records: HashMap::new(),
            waiters: HashMap::new(),
            waiter_count: 0,
            next_seq: 0,
            next_store: 0,
            next_waiter_id: 0,
            evicted: 0,
            expired: 0,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.config
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn waiter_count(&self) -> usize {
        self.waiter_count
    }

    /// Removes every record whose deadline has passed. Every operation calls it first, so an
    /// expired record is never observed, whether or not a sweep has run since.
    pub(crate) fn expire_due(&mut self) {
        self.expire_due_at(None);
    }

    /// `expire_due` as of `at` (default: now). A pipelined store is applied as of when it was
    /// made, so a record it refreshes in time is not expired by the delay in the queue.
    fn expire_due_at(&mut self, at: Option<Instant>) {
        let Some((&(first, _), _)) = self.links.expiry.first_key_value() else {
            return;
        };
        let now = at.unwrap_or_else(|| self.config.clock.now());
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
        shrink_if_sparse(&mut self.records);
    }

    fn remove_record(&mut self, task_id: &str, kind: EventKind) -> Option<Entry> {
        let (id, entry) = self.records.remove_entry(task_id)?;
        self.links.unlink(&entry);
        if let Some(view) = &self.view {
            view.removed(task_id);
        }
        self.events
            .emit(kind, &id, &entry.record, &self.config.clock);
        Some(entry)
    }

    /// Stores `record` under `task_id` and returns it as stored (task fields merged from the
    /// previous record). The caller has checked that the record came with that id; everything
    /// else is checked here.
    pub(crate) fn store(
        &mut self,
        task_id: &str,
        record: CompactRecord,
        at: Option<Instant>,
        ticket: Option<u64>,
    ) -> Result<SharedRecord, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
        let mut record = record;
        record.intern_task_name(&mut self.names);
        self.expire_due_at(at);
        let record = self.admit(task_id, record)?;
        if !self.records.contains_key(task_id) {
            self.make_room(&HashSet::new())?;
        }
        Ok(self.apply_store(task_id, record, at, ticket))
    }

    /// The policy and size checks a store must pass, changing nothing: returns the record as
    /// it will be stored, task fields merged.
    fn admit(
        &self,
        task_id: &str,
        mut record: CompactRecord,
    ) -> Result<CompactRecord, BackendError> {
        if let Some(previous) = self.records.get(task_id) {
            validate::terminal_policy(task_id, Some(previous.record.status), &self.config)?;
            record.inherit_task_fields(&previous.record);
        }
        if self.config.max_record_bytes.is_some() {
            validate::record_bytes(record.json_len(task_id), &self.config)?;
        }
        Ok(record)
    }

    /// Under `max_results`, evicts the terminal record whose latest store is oldest (skipping
    /// `keep`) so that a new id fits; refuses when no record can go.
    fn make_room(&mut self, keep: &HashSet<&str>) -> Result<(), BackendError> {
        let Some(max) = self.config.max_results else {
            return Ok(());
        };
        while self.records.len() >= max {
            let oldest = self
                .links
                .terminal_by_store
                .as_ref()
                .and_then(|terminal| terminal.values().find(|id| !keep.contains(&***id)))
                .map(Arc::clone);
            let Some(oldest) = oldest else {
                return Err(BackendError::Overloaded {
                    reason: format!(
                        "{} records, at max_results ({max}), and none can be evicted",
                        self.records.len()
                    ),
                });
            };
            // Reported as expired: the hub's retention rules removed it, not a caller.
            self.remove_record(&oldest, EventKind::Expired);
            self.evicted += 1;
            tracing::debug!(name: "hub.evict", task_id = %oldest);
        }
        Ok(())
    }

    /// Stores a record that passed `admit` and `make_room`: cannot fail; returns it as stored.
    /// `at` is when the caller stored it, if it says; TTLs count from then. `ticket` marks a
    /// pipelined store, which the read view then no longer holds as queued.
    fn apply_store(
        &mut self,
        task_id: &str,
        record: CompactRecord,
        at: Option<Instant>,
        ticket: Option<u64>,
    ) -> SharedRecord {
        let stored = self.next_store;
        self.next_store += 1;
        let expires_at = self.config.ttl(record.is_complete()).and_then(|ttl| {
            at.unwrap_or_else(|| self.config.clock.now())
                .checked_add(ttl)
        });
        let record = Arc::new(record);
        let id = match self.records.get_key_value(task_id) {
            Some((id, _)) => Arc::clone(id),
            None => Arc::from(task_id),
        };
        match self.records.get_mut(task_id) {
            Some(entry) => {
                self.links.unlink(entry);
                // Mid-change on purpose: the test checks that `repair` restores the links.
                inject_fault!(self, "store");
                entry.record = Arc::clone(&record);
                entry.stored = stored;
                entry.expires_at = expires_at;
                self.links.link(&id, entry);
            }
            None => {
                let entry = Entry {
                    record: Arc::clone(&record),
                    seq: self.next_seq,
                    stored,
                    expires_at,
                };
                self.next_seq += 1;
                self.links.link(&id, &entry);
                self.records.insert(Arc::clone(&id), entry);
            }
        }
        if let Some(view) = &self.view {
            view.applied(&id, &record, expires_at, ticket);
        }
        self.events
            .emit(EventKind::Stored, &id, &record, &self.config.clock);
        if record.is_complete() {
            if let Some(waiters) = self.waiters.remove(task_id) {
                self.waiter_count -= waiters.len();
                waiters.answer(&record);
                shrink_if_sparse(&mut self.waiters);
            }
        }
        record
    }

    pub(crate) fn get(&mut self, task_id: &str) -> Result<Option<SharedRecord>, BackendError> {
        validate::id_length(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "get");
        Ok(self
            .records
            .get(task_id)
            .map(|entry| Arc::clone(&entry.record)))
    }

    pub(crate) fn register_waiter(&mut self, task_id: &str) -> Result<Registration, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "wait_for");
        let key = match self.records.get_key_value(task_id) {
            Some((_, entry)) if entry.record.is_complete() => {
                return Ok(Registration::Ready(Arc::clone(&entry.record)));
            }
            Some((id, _)) => Some(Arc::clone(id)),
            None => None,
        };
        if let Some(max) = self.config.max_waiters {
            if self.waiter_count >= max {
                return Err(BackendError::Overloaded {
                    reason: format!("{} waiters, at max_waiters ({max})", self.waiter_count),
                });
            }
        }
        let (sender, receiver) = oneshot::channel();
        let waiter_id = self.next_waiter_id;
        self.next_waiter_id += 1;
        let task_id = match self.waiters.get_key_value(task_id) {
            Some((id, _)) => Arc::clone(id),
            None => key.unwrap_or_else(|| Arc::from(task_id)),
        };
        match self.waiters.get_mut(&task_id) {
            Some(waiters) => waiters.push(waiter_id, sender),
            None => {
                self.waiters
                    .insert(Arc::clone(&task_id), Waiters::One(waiter_id, sender));
            }
        }
        self.waiter_count += 1;
        Ok(Registration::Waiting {
            task_id,
            waiter_id,
            receiver,
        })
    }

    /// Removes a waiter whose caller gave up. A no-op if a terminal store answered it first.
    pub(crate) fn cancel_waiter(&mut self, task_id: &str, waiter_id: u64) {
        let Some(waiters) = self.waiters.get_mut(task_id) else {
            return;
        };
        let removed = waiters.remove(waiter_id);
        if removed {
            self.waiter_count -= 1;
        }
        if waiters.is_empty_after_remove(removed) {
            self.waiters.remove(task_id);
            shrink_if_sparse(&mut self.waiters);
        }
    }

    pub(crate) fn delete(&mut self, task_id: &str) -> Result<bool, BackendError> {
        validate::id_length(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "delete");
        let existed = self.remove_record(task_id, EventKind::Deleted).is_some();
        shrink_if_sparse(&mut self.records);
        Ok(existed)
    }

    pub(crate) fn clear(&mut self) -> usize {
        self.expire_due();
        inject_fault!(self, "clear");
        let removed = self.records.len();
        // Fresh maps rather than `clear()`, which would keep the old capacity.
        let records = std::mem::take(&mut self.records);
        if self.events.active() {
            let mut entries: Vec<(Arc<str>, Entry)> = records.into_iter().collect();
            entries.sort_unstable_by_key(|(_, entry)| entry.seq);
            for (id, entry) in &entries {
                self.events
                    .emit(EventKind::Cleared, id, &entry.record, &self.config.clock);
            }
        }
        self.links = Links::new(&self.config);
        if let Some(view) = &self.view {
            view.cleared();
        }
        // Names no record uses any more.
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
        ids.into_iter()
            .filter_map(|id| {
                let entry = self.records.get(id)?;
                Some((Arc::clone(id), Arc::clone(&entry.record)))
            })
            .collect()
    }

    pub(crate) fn stats(&mut self) -> HubStats {
        self.expire_due();
        inject_fault!(self, "stats");
        let mut stats = HubStats {
            results: self.records.len(),
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

    /// A new subscription to the events of every change from now on.
    pub(crate) fn subscribe(&mut self) -> tokio::sync::broadcast::Receiver<RawEvent> {
        self.events.subscribe()
    }

    /// Every record, in the order their ids were first stored.
    pub(crate) fn snapshot(&mut self) -> Vec<Keyed> {
        self.expire_due();
        inject_fault!(self, "snapshot");
        let mut entries: Vec<(&Arc<str>, &Entry)> = self.records.iter().collect();
        entries.sort_unstable_by_key(|(_, entry)| entry.seq);
        entries
            .into_iter()
            .map(|(id, entry)| (Arc::clone(id), Arc::clone(&entry.record)))
            .collect()
    }

    /// Stores `records` in order, all or none: every record is checked against the rules and
    /// limits a store would apply before the first is stored.
    pub(crate) fn restore(
        &mut self,
        records: Vec<(String, CompactRecord)>,
    ) -> Result<usize, BackendError> {
        self.expire_due();
        inject_fault!(self, "restore");
        self.check_restore(&records)?;
        let count = records.len();
        let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        let keep: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for (task_id, mut record) in records {
            // Checked above: these cannot refuse. Room comes from records outside the restore.
            match self.records.get(task_id.as_str()) {
                Some(previous) => record.inherit_task_fields(&previous.record),
                None => self.make_room(&keep)?,
            }
            self.apply_store(&task_id, record, None, None);
        }
        Ok(count)
    }

    /// Dry-runs `restore`: the merged record of each id, the terminal policy, the sizes, and
    /// room under `max_results` without evicting anything the restore itself stores.
    fn check_restore(&self, records: &[(String, CompactRecord)]) -> Result<(), BackendError> {
        let mut merged: HashMap<&str, CompactRecord> = HashMap::new();
        for (position, (id, record)) in records.iter().enumerate() {
            let at = |error: BackendError| match error {
                BackendError::InvalidInput { reason } => BackendError::InvalidInput {
                    reason: format!("record {position}: {reason}"),
                },
                other => other,
            };
            validate::waitable_id(id, &self.config).map_err(at)?;
            let previous = merged
                .get(id.as_str())
                .or_else(|| self.records.get(id.as_str()).map(|entry| &*entry.record));
            let mut next = record.clone();
            if let Some(previous) = previous {
                validate::terminal_policy(id, Some(previous.status), &self.config)?;
                next.inherit_task_fields(previous);
            }
            if self.config.max_record_bytes.is_some() {
                validate::record_bytes(next.json_len(id), &self.config).map_err(at)?;
            }
            merged.insert(id.as_str(), next);
        }
        if let Some(max) = self.config.max_results {
            let new_ids = merged
                .keys()
                .filter(|id| !self.records.contains_key(**id))
                .count();
            let evictable = self
                .records
                .iter()
                .filter(|(id, entry)| entry.record.is_complete() && !merged.contains_key(&***id))
                .count();
            let free = max.saturating_sub(self.records.len());
            if new_ids > free + evictable {
                return Err(BackendError::Overloaded {
                    reason: format!(
                        "restoring {new_ids} new ids needs room beyond max_results ({max})"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds every derived structure from the records and waiters, after a handler
    /// panicked midway through a change.
    pub(crate) fn repair(&mut self) {
        let mut links = Links::new(&self.config);
        for (id, entry) in &self.records {
            links.link(id, entry);
        }
        self.links = links;
        self.waiter_count = self.waiters.values().map(Waiters::len).sum();
        if let Some(view) = &self.view {
            let records = self.records.iter();
            view.rebuild(records.map(|(id, entry)| (id, &entry.record, entry.expires_at)));
        }
    }
}

/// Gives memory back once a map is mostly empty, so a burst of records or waiters does not
/// pin its peak size forever. Halving only below a quarter keeps the cost amortized O(1).
fn shrink_if_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    const MIN_CAPACITY: usize = 1024;
    if map.capacity() > MIN_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TaskResult, TaskStatus};

    fn packed(id: &str, status: TaskStatus) -> CompactRecord {
        CompactRecord::pack(TaskResult::new(id, status))
    }

    #[test]
    fn index_follows_status_changes_and_deletes() {
        let mut state = HubState::new(HubConfig::default(), None);
        state
            .store("a", packed("a", TaskStatus::Pending), None, None)
            .unwrap();
        state
            .store("a", packed("a", TaskStatus::Running), None, None)
            .unwrap();
        let stats = state.stats();
        assert_eq!((stats.by_status.pending, stats.by_status.running), (0, 1));
        assert!(state.delete("a").unwrap());
        assert!(state.links.by_status.iter().all(BTreeMap::is_empty));
        assert!(state.records.is_empty());
    }

    #[test]
    fn cancelled_waiters_leave_no_entry() {
        let mut state = HubState::new(HubConfig::default(), None);
        let mut ids = Vec::new();
        for _ in 0..3 {
            let Registration::Waiting { waiter_id, .. } = state.register_waiter("a").unwrap()
            else {
                panic!("nothing stored, so the waiter must wait");
            };
            ids.push(waiter_id);
        }
        for waiter_id in ids.iter().chain(&ids) {
            state.cancel_waiter("a", *waiter_id);
        }
        assert_eq!(state.waiter_count, 0);
        assert!(state.waiters.is_empty());
    }

    #[test]
    fn maps_give_memory_back_after_a_burst() {
        let mut state = HubState::new(HubConfig::default(), None);
        let mut ids = Vec::new();
        for n in 0..10_000 {
            let id = format!("t{n}");
            let Registration::Waiting { waiter_id, .. } = state.register_waiter(&id).unwrap()
            else {
                panic!("nothing stored, so the waiter must wait");
            };
            ids.push((id, waiter_id));
            let stored = format!("r{n}");
            state
                .store(&stored, packed(&stored, TaskStatus::Success), None, None)
                .unwrap();
        }
        let peak = (state.waiters.capacity(), state.records.capacity());
        for (id, waiter_id) in &ids {
            state.cancel_waiter(id, *waiter_id);
        }
        for n in 0..10_000 {
            assert!(state.delete(&format!("r{n}")).unwrap());
        }
        assert!(state.waiters.capacity() < peak.0 / 4);
        assert!(state.records.capacity() < peak.1 / 4);
    }
}
