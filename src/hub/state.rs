//! Everything the hub holds, as a plain single-threaded state machine.
//!
//! The actor in `hub/mod.rs` only routes messages here. Keeping the state free of actix makes
//! every rule checkable without a System, and keeps each handler a small, non-blocking change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::order::ListKey;
use crate::{BackendError, HubConfig, HubStats, TaskResult, TaskStatus, TerminalPolicy, validate};

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

/// One stored record and its bookkeeping.
#[derive(Debug)]
struct Entry {
    record: TaskResult,
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

    /// Removes the entry from every order, returning its id as the listing index held it.
    fn unlink(&mut self, entry: &Entry) -> Option<Arc<str>> {
        if let Some(terminal) = &mut self.terminal_by_store {
            terminal.remove(&entry.stored);
        }
        if let Some(at) = entry.expires_at {
            self.expiry.remove(&(at, entry.stored));
        }
        self.by_status[entry.record.status.index()].remove(&entry.list_key())
    }
}

/// A registered waiter: its id (so a caller that gives up can remove exactly its own entry)
/// and the sender the next terminal store answers.
type Waiter = (u64, oneshot::Sender<TaskResult>);

/// What `register_waiter` found.
// Built once per wait and moved straight out; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Registration {
    /// The record is terminal already.
    Ready(TaskResult),
    /// A waiter was registered under this id; the receiver gets the next terminal record.
    Waiting {
        waiter_id: u64,
        receiver: oneshot::Receiver<TaskResult>,
    },
}

#[derive(Debug)]
pub(crate) struct HubState {
    config: HubConfig,
    records: HashMap<Arc<str>, Entry>,
    links: Links,
    waiters: HashMap<String, Vec<Waiter>>,
    waiter_count: usize,
    next_seq: u64,
    next_store: u64,
    next_waiter_id: u64,
    evicted: u64,
    expired: u64,
    /// The operation whose next call panics, for the fault-injection tests.
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<&'static str>,
}

impl HubState {
    pub(crate) fn new(config: HubConfig) -> Self {
        HubState {
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

    /// Removes every record whose deadline has passed. Every operation calls it first, so an
    /// expired record is never observed, whether or not a sweep has run since.
    pub(crate) fn expire_due(&mut self) {
        let Some((&(first, _), _)) = self.links.expiry.first_key_value() else {
            return;
        };
        let now = self.config.clock.now();
        if first > now {
            return;
        }
        while let Some(entry) = self.links.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if self.remove_record(&id).is_some() {
                self.expired += 1;
            }
        }
        shrink_if_sparse(&mut self.records);
    }

    fn remove_record(&mut self, task_id: &str) -> Option<Entry> {
        let entry = self.records.remove(task_id)?;
        self.links.unlink(&entry);
        Some(entry)
    }

    pub(crate) fn store(&mut self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        let result = self.admit(task_id, result)?;
        self.apply_store(task_id, result);
        Ok(())
    }

    /// Every check a store must pass, with nothing changed if one fails (expiry aside):
    /// returns the record as it will be stored, task fields merged.
    fn admit(&mut self, task_id: &str, mut result: TaskResult) -> Result<TaskResult, BackendError> {
        validate::store(task_id, &result, &self.config)?;
        self.expire_due();
        let previous = self.records.get(task_id);
        if let Some(previous) = previous {
            if self.config.terminal_policy == TerminalPolicy::KeepFirst
                && previous.record.is_complete()
            {
                return Err(BackendError::Conflict {
                    task_id: task_id.to_owned(),
                    status: previous.record.status,
                });
            }
            result.inherit_task_fields(&previous.record);
        }
        validate::record_size(&result, &self.config)?;
        if previous.is_none() {
            self.make_room(&HashSet::new())?;
        }
        Ok(result)
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
                        "{} records, at max_results ({max}), and none is terminal",
                        self.records.len()
                    ),
                });
            };
            self.remove_record(&oldest);
            self.evicted += 1;
            tracing::debug!(name: "hub.evict", task_id = %oldest);
        }
        Ok(())
    }

    /// Stores a record that passed `admit`: cannot fail.
    fn apply_store(&mut self, task_id: &str, record: TaskResult) {
        let stored = self.next_store;
        self.next_store += 1;
        let expires_at = self
            .config
            .ttl(record.is_complete())
            .and_then(|ttl| self.config.clock.now().checked_add(ttl));
        let entry = match self.records.get_mut(task_id) {
            Some(entry) => {
                let id = self
                    .links
                    .unlink(entry)
                    .unwrap_or_else(|| Arc::from(task_id));
                // Mid-change on purpose: the test checks that `repair` restores the links.
                inject_fault!(self, "store");
                entry.record = record;
                entry.stored = stored;
                entry.expires_at = expires_at;
                self.links.link(&id, entry);
                &*entry
            }
            None => {
                let id: Arc<str> = Arc::from(task_id);
                let entry = Entry {
                    record,
                    seq: self.next_seq,
                    stored,
                    expires_at,
                };
                self.next_seq += 1;
                self.links.link(&id, &entry);
                self.records.entry(id).or_insert(entry)
            }
        };
        if entry.record.is_complete() {
            if let Some(waiters) = self.waiters.remove(task_id) {
                self.waiter_count -= waiters.len();
                for (_, sender) in waiters {
                    // A receiver dropped since is being cancelled; its message is harmless.
                    let _ = sender.send(entry.record.clone());
                }
                shrink_if_sparse(&mut self.waiters);
            }
        }
    }

    pub(crate) fn get(&mut self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        validate::id_length(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "get");
        Ok(self.records.get(task_id).map(|entry| entry.record.clone()))
    }

    pub(crate) fn register_waiter(&mut self, task_id: &str) -> Result<Registration, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "wait_for");
        if let Some(entry) = self.records.get(task_id) {
            if entry.record.is_complete() {
                return Ok(Registration::Ready(entry.record.clone()));
            }
        }
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
        self.waiters
            .entry(task_id.to_owned())
            .or_default()
            .push((waiter_id, sender));
        self.waiter_count += 1;
        Ok(Registration::Waiting {
            waiter_id,
            receiver,
        })
    }

    /// Removes a waiter whose caller gave up. A no-op if a terminal store answered it first.
    pub(crate) fn cancel_waiter(&mut self, task_id: &str, waiter_id: u64) {
        let Some(waiters) = self.waiters.get_mut(task_id) else {
            return;
        };
        if let Some(position) = waiters.iter().position(|(id, _)| *id == waiter_id) {
            waiters.swap_remove(position);
            self.waiter_count -= 1;
        }
        if waiters.is_empty() {
            self.waiters.remove(task_id);
            shrink_if_sparse(&mut self.waiters);
        }
    }

    pub(crate) fn delete(&mut self, task_id: &str) -> Result<bool, BackendError> {
        validate::id_length(task_id, &self.config)?;
        self.expire_due();
        inject_fault!(self, "delete");
        let existed = self.remove_record(task_id).is_some();
        shrink_if_sparse(&mut self.records);
        Ok(existed)
    }

    pub(crate) fn clear(&mut self) -> usize {
        self.expire_due();
        inject_fault!(self, "clear");
        let removed = self.records.len();
        // Fresh maps rather than `clear()`, which would keep the old capacity.
        self.records = HashMap::new();
        self.links = Links::new(&self.config);
        removed
    }

    pub(crate) fn list_by_status(
        &mut self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<TaskResult> {
        self.expire_due();
        inject_fault!(self, "list_by_status");
        let page = self.links.by_status[status.index()].values().skip(offset);
        let records = page.filter_map(|id| self.records.get(id).map(|entry| entry.record.clone()));
        match limit {
            Some(limit) => records.take(limit).collect(),
            None => records.collect(),
        }
    }

    pub(crate) fn stats(&mut self) -> HubStats {
        self.expire_due();
        inject_fault!(self, "stats");
        let mut stats = HubStats {
            results: self.records.len(),
            waiters: self.waiter_count,
            evicted: self.evicted,
            expired: self.expired,
            ..HubStats::default()
        };
        for status in TaskStatus::ALL {
            *stats.by_status.slot(status) = self.links.by_status[status.index()].len();
        }
        stats
    }

    /// Every record, in the order their ids were first stored.
    pub(crate) fn snapshot(&mut self) -> Vec<TaskResult> {
        self.expire_due();
        inject_fault!(self, "snapshot");
        let mut entries: Vec<&Entry> = self.records.values().collect();
        entries.sort_unstable_by_key(|entry| entry.seq);
        entries
            .into_iter()
            .map(|entry| entry.record.clone())
            .collect()
    }

    /// Stores `records` in order, all or none: every record is checked against the rules and
    /// limits a store would apply before the first is stored.
    pub(crate) fn restore(&mut self, records: Vec<TaskResult>) -> Result<usize, BackendError> {
        self.expire_due();
        inject_fault!(self, "restore");
        self.check_restore(&records)?;
        let count = records.len();
        let ids: Vec<String> = records
            .iter()
            .map(|record| record.task_id.clone())
            .collect();
        let keep: HashSet<&str> = ids.iter().map(String::as_str).collect();
        for record in records {
            let task_id = record.task_id.clone();
            // Checked above: these cannot refuse. Room comes from records outside the restore.
            let is_new = !self.records.contains_key(task_id.as_str());
            let mut record = record;
            if let Some(previous) = self.records.get(task_id.as_str()) {
                record.inherit_task_fields(&previous.record);
            }
            if is_new {
                self.make_room(&keep)?;
            }
            self.apply_store(&task_id, record);
        }
        Ok(count)
    }

    /// Dry-runs `restore`: the merged record of each id, the terminal policy, the sizes, and
    /// room under `max_results` without evicting anything the restore itself stores.
    fn check_restore(&self, records: &[TaskResult]) -> Result<(), BackendError> {
        let mut merged: HashMap<&str, TaskResult> = HashMap::new();
        for (position, record) in records.iter().enumerate() {
            let at = |error: BackendError| match error {
                BackendError::InvalidInput { reason } => BackendError::InvalidInput {
                    reason: format!("record {position}: {reason}"),
                },
                other => other,
            };
            validate::store(&record.task_id, record, &self.config).map_err(at)?;
            let id = record.task_id.as_str();
            let previous = merged
                .get(id)
                .or_else(|| self.records.get(id).map(|entry| &entry.record));
            let mut next = record.clone();
            if let Some(previous) = previous {
                if self.config.terminal_policy == TerminalPolicy::KeepFirst
                    && previous.is_complete()
                {
                    return Err(BackendError::Conflict {
                        task_id: id.to_owned(),
                        status: previous.status,
                    });
                }
                next.inherit_task_fields(previous);
            }
            validate::record_size(&next, &self.config).map_err(at)?;
            merged.insert(id, next);
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
        self.waiters.retain(|_, waiters| !waiters.is_empty());
        self.waiter_count = self.waiters.values().map(Vec::len).sum();
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

    #[test]
    fn index_follows_status_changes_and_deletes() {
        let mut state = HubState::new(HubConfig::default());
        state
            .store("a", TaskResult::new("a", TaskStatus::Pending))
            .unwrap();
        state
            .store("a", TaskResult::new("a", TaskStatus::Running))
            .unwrap();
        let stats = state.stats();
        assert_eq!((stats.by_status.pending, stats.by_status.running), (0, 1));
        assert!(state.delete("a").unwrap());
        assert!(state.links.by_status.iter().all(BTreeMap::is_empty));
        assert!(state.records.is_empty());
    }

    #[test]
    fn cancelled_waiters_leave_no_entry() {
        let mut state = HubState::new(HubConfig::default());
        let Registration::Waiting { waiter_id, .. } = state.register_waiter("a").unwrap() else {
            panic!("nothing stored, so the waiter must wait");
        };
        state.cancel_waiter("a", waiter_id);
        state.cancel_waiter("a", waiter_id);
        assert_eq!(state.waiter_count, 0);
        assert!(state.waiters.is_empty());
    }

    #[test]
    fn maps_give_memory_back_after_a_burst() {
        let mut state = HubState::new(HubConfig::default());
        let mut ids = Vec::new();
        for n in 0..10_000 {
            let id = format!("t{n}");
            let Registration::Waiting { waiter_id, .. } = state.register_waiter(&id).unwrap()
            else {
                panic!("nothing stored, so the waiter must wait");
            };
            ids.push((id, waiter_id));
            state
                .store(
                    &format!("r{n}"),
                    TaskResult::new(format!("r{n}"), TaskStatus::Success),
                )
                .unwrap();
        }
        let peak = (state.waiters.capacity(), state.records.capacity());
        for (id, waiter_id) in &ids {
            state.cancel_waiter(id, *waiter_id);
        }
        for n in 0..10_000 {
            assert!(state.delete(&format!("r{n}")).unwrap());
        }
        assert!(
            state.waiters.capacity() < peak.0 / 4,
            "waiters kept {} of {}",
            state.waiters.capacity(),
            peak.0
        );
        assert!(
            state.records.capacity() < peak.1 / 4,
            "records kept {} of {}",
            state.records.capacity(),
            peak.1
        );
    }
}
