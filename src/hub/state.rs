//! Everything the hub holds, as a plain single-threaded state machine.
//!
//! The actor in `hub/mod.rs` only routes messages here. Keeping the state free of actix makes
//! every rule checkable without a System, and keeps each handler a small, non-blocking change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::order::ListKey;
use crate::{BackendError, HubConfig, HubStats, TaskResult, TaskStatus, validate};

/// One stored record and the number of its id's first store, which breaks listing ties.
#[derive(Debug)]
struct Entry {
    record: TaskResult,
    seq: u64,
}

impl Entry {
    fn key(&self) -> ListKey {
        ListKey {
            submitted_at: self.record.submitted_at,
            seq: self.seq,
        }
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
    /// Per status (indexed by `TaskStatus::index`), the listing order of its records, so a
    /// page costs O(log n + offset + page) instead of a sort of everything.
    index: [BTreeMap<ListKey, Arc<str>>; 5],
    waiters: HashMap<String, Vec<Waiter>>,
    waiter_count: usize,
    next_seq: u64,
    next_waiter_id: u64,
}

impl HubState {
    pub(crate) fn new(config: HubConfig) -> Self {
        HubState {
            config,
            records: HashMap::new(),
            index: Default::default(),
            waiters: HashMap::new(),
            waiter_count: 0,
            next_seq: 0,
            next_waiter_id: 0,
        }
    }

    pub(crate) fn store(
        &mut self,
        task_id: &str,
        mut result: TaskResult,
    ) -> Result<(), BackendError> {
        validate::store(task_id, &result, &self.config)?;
        if let Some(entry) = self.records.get_mut(task_id) {
            result.inherit_task_fields(&entry.record);
            let old_key = entry.key();
            let id = self.index[entry.record.status.index()]
                .remove(&old_key)
                .unwrap_or_else(|| Arc::from(task_id));
            entry.record = result;
            self.index[entry.record.status.index()].insert(entry.key(), id);
        } else {
            let id: Arc<str> = Arc::from(task_id);
            let entry = Entry {
                record: result,
                seq: self.next_seq,
            };
            self.next_seq += 1;
            self.index[entry.record.status.index()].insert(entry.key(), Arc::clone(&id));
            self.records.insert(id, entry);
        }
        self.wake_if_terminal(task_id);
        Ok(())
    }

    fn wake_if_terminal(&mut self, task_id: &str) {
        let Some(entry) = self.records.get(task_id) else {
            return;
        };
        if !entry.record.is_complete() {
            return;
        }
        let Some(waiters) = self.waiters.remove(task_id) else {
            return;
        };
        self.waiter_count -= waiters.len();
        shrink_if_sparse(&mut self.waiters);
        for (_, sender) in waiters {
            // A receiver dropped since is being cancelled; its message is harmless.
            let _ = sender.send(entry.record.clone());
        }
    }

    pub(crate) fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        validate::id_length(task_id, &self.config)?;
        Ok(self.records.get(task_id).map(|entry| entry.record.clone()))
    }

    pub(crate) fn register_waiter(&mut self, task_id: &str) -> Result<Registration, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
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
        let Some(entry) = self.records.remove(task_id) else {
            return Ok(false);
        };
        self.index[entry.record.status.index()].remove(&entry.key());
        shrink_if_sparse(&mut self.records);
        Ok(true)
    }

    pub(crate) fn clear(&mut self) -> usize {
        let removed = self.records.len();
        // A fresh map rather than `clear()`, which would keep the old capacity.
        self.records = HashMap::new();
        self.index.iter_mut().for_each(BTreeMap::clear);
        removed
    }

    pub(crate) fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<TaskResult> {
        let page = self.index[status.index()].values().skip(offset);
        let records = page.filter_map(|id| self.records.get(id).map(|entry| entry.record.clone()));
        match limit {
            Some(limit) => records.take(limit).collect(),
            None => records.collect(),
        }
    }

    pub(crate) fn stats(&self) -> HubStats {
        let mut stats = HubStats {
            results: self.records.len(),
            waiters: self.waiter_count,
            ..HubStats::default()
        };
        for status in TaskStatus::ALL {
            *stats.by_status.slot(status) = self.index[status.index()].len();
        }
        stats
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
        assert!(state.index.iter().all(BTreeMap::is_empty));
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
