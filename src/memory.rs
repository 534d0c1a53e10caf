//! A lock-sharded in-memory backend, with no actor in between.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::one::RefMut;
use tokio::sync::oneshot;

use crate::operations::{Call, OperationKind, Operations, Outcome, op_span};
use crate::order::{ListKey, page};
use crate::{
    BackendError, Cursor, HubConfig, HubStats, Limit, OperationMetrics, Page, ResultBackend,
    TaskResult, TaskStatus, validate,
};

/// A [`ResultBackend`] on a sharded concurrent map ([`dashmap`]): each operation locks only the
/// shard that holds its id, with no actor or thread hop in between.
///
/// It keeps the same contract, limits and policies as the hub ([`HubConfig`]) and is its
/// reference peer in tests and benchmarks. Pick it when one process needs the lowest latency
/// per call; pick the hub when you want one owner of all state inside an actix application, or
/// a bounded listing cost: this backend's `list_by_status` sorts every record of the status on
/// each call. With `max_results` or a TTL set, every change also takes one backend-wide lock
/// (eviction and expiry need one order of all records), so writes no longer run in parallel.
///
/// A record and its waiters live under one shard lock, so a store and a `wait_for` racing on
/// the same id can never lose the wake-up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resulthub::{InMemoryBackend, ResultBackend, TaskResult, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resulthub::BackendError> {
/// let backend = InMemoryBackend::new();
/// backend.store("t1", TaskResult::new("t1", TaskStatus::Failed).with_error("boom")).await?;
/// let record = backend.wait_for("t1", Some(Duration::ZERO)).await?;
/// assert_eq!(record.error.as_deref(), Some("boom"));
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct InMemoryBackend {
    config: HubConfig,
    slots: DashMap<String, Slot>,
    /// The eviction and expiry orders. Only with `max_results` or a TTL; its lock then
    /// serializes every change to the records.
    eviction: Option<Mutex<EvictionOrder>>,
    records: AtomicUsize,
    next_seq: AtomicU64,
    next_store: AtomicU64,
    next_waiter_id: AtomicU64,
    waiter_count: AtomicUsize,
    evicted: AtomicU64,
    expired: AtomicU64,
    operations: Operations,
}

impl std::fmt::Debug for InMemoryBackend {
    /// A summary: the backend may hold a million records.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryBackend")
            .field("records", &self.records.load(Ordering::Acquire))
            .field("waiters", &self.waiter_count.load(Ordering::Acquire))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one id holds: its record, if stored, and the callers waiting for it. A slot with
/// neither is removed.
#[derive(Debug, Default)]
struct Slot {
    entry: Option<Entry>,
    /// By waiter id, so that a caller giving up removes its own entry in O(1), however many
    /// wait for the same id.
    waiters: HashMap<u64, oneshot::Sender<TaskResult>>,
}

#[derive(Debug)]
struct Entry {
    record: TaskResult,
    /// Numbers the id's first store: breaks listing ties.
    seq: u64,
    /// Numbers the latest store: the eviction order.
    stored: u64,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.entry.is_none() && self.waiters.is_empty()
    }
}

/// What eviction under `max_results` needs to see across shards.
#[derive(Debug, Default)]
struct EvictionOrder {
    /// Terminal records by latest store, oldest first.
    terminal: BTreeMap<u64, String>,
    /// Records with a deadline, soonest first, so that room is made by expiry before eviction.
    expiry: BTreeMap<(Instant, u64), String>,
}

impl InMemoryBackend {
    /// An empty backend with [`HubConfig::default`] limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty backend with these limits, TTLs and terminal policy, applied as the hub
    /// applies them.
    pub fn with_config(config: HubConfig) -> Self {
        InMemoryBackend {
            // Expiry needs the same cross-shard order as eviction: without it, expired records
            // would stay in memory until their id is touched again.
            eviction: (config.max_results.is_some()
                || config.result_ttl.is_some()
                || config.pending_ttl.is_some())
            .then(|| Mutex::new(EvictionOrder::default())),
            config,
            ..Self::default()
        }
    }

    /// Counts what the backend holds. Walks every shard (dropping expired records on the way),
    /// so it costs O(records).
    pub fn stats(&self) -> HubStats {
        self.sweep();
        let mut stats = HubStats {
            waiters: self.waiter_count.load(Ordering::Acquire),
            evicted: self.evicted.load(Ordering::Acquire),
            expired: self.expired.load(Ordering::Acquire),
            ..HubStats::default()
        };
        let now = self.config.clock.now();
        for slot in self.slots.iter() {
            if let Some(entry) = slot.entry.as_ref().filter(|entry| entry.is_live(now)) {
                stats.results += 1;
                *stats.by_status.slot(entry.record.status) += 1;
            }
        }
        stats
    }

    /// What the [`ResultBackend`] calls made on this backend have counted: operations by kind
    /// and outcome, and their latencies (see [`operations`](crate::operations)).
    pub fn operations(&self) -> OperationMetrics {
        self.operations.snapshot()
    }

    /// The operation `kind` begins, in its span.
    fn call(&self, kind: OperationKind, task_id: Option<&str>) -> Call {
        let span = match task_id {
            Some(task_id) => op_span!("resulthub::memory", "memory", kind, task_id),
            None => op_span!("resulthub::memory", "memory", kind),
        };
        Call::begin(kind, span)
    }

    /// Runs `work`, a whole operation of `call`, inside its span, and counts it.
    fn observe<T>(
        &self,
        call: Call,
        work: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let result = call.in_span(work);
        call.finish(Some(&self.operations), &result);
        result
    }

    /// Removes every expired record.
    fn sweep(&self) {
        if self.config.result_ttl.is_none() && self.config.pending_ttl.is_none() {
            return;
        }
        let mut eviction = self.lock_eviction();
        let now = self.config.clock.now();
        self.slots.retain(|_, slot| {
            self.drop_if_expired(slot, now, eviction.as_deref_mut());
            !slot.is_empty()
        });
    }

    /// The eviction order, locked, when `max_results` is set. Every change to the records
    /// takes it first (before any shard lock), so a change and an eviction never interleave.
    fn lock_eviction(&self) -> Option<MutexGuard<'_, EvictionOrder>> {
        self.eviction.as_ref().map(|order| {
            order
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// Removes every record whose deadline has passed, using the expiry order. Called with the
    /// eviction lock held and no shard lock, before a store checks for room.
    fn expire_due(&self, order: &mut EvictionOrder, now: Instant) {
        while let Some(entry) = order.expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.slots.remove_if_mut(&id, |_, slot| {
                self.drop_if_expired(slot, now, Some(&mut *order));
                slot.is_empty()
            });
        }
    }

    /// Removes the slot's record if its deadline has passed.
    fn drop_if_expired(&self, slot: &mut Slot, now: Instant, eviction: Option<&mut EvictionOrder>) {
        if slot.entry.as_ref().is_some_and(|entry| !entry.is_live(now)) {
            self.take_entry(slot, eviction);
            self.expired.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Removes the slot's record, if any, from the slot and the bookkeeping.
    fn take_entry(&self, slot: &mut Slot, eviction: Option<&mut EvictionOrder>) -> Option<Entry> {
        let entry = slot.entry.take()?;
        self.records.fetch_sub(1, Ordering::AcqRel);
        if let Some(order) = eviction {
            order.terminal.remove(&entry.stored);
            if let Some(at) = entry.expires_at {
                order.expiry.remove(&(at, entry.stored));
            }
        }
        Some(entry)
    }

    /// Removes an empty slot left by a refused operation.
    fn remove_if_empty(&self, task_id: &str) {
        self.slots.remove_if(task_id, |_, slot| slot.is_empty());
    }

    /// Evicts the terminal record whose latest store is oldest, or refuses when none is
    /// terminal. Called with the eviction lock held and no shard lock.
    fn evict_oldest(&self, order: &mut EvictionOrder, max: usize) -> Result<(), BackendError> {
        let Some((_, victim)) = order.terminal.pop_first() else {
            let held = self.records.load(Ordering::Acquire);
            return Err(BackendError::overloaded(
                Limit::MaxResults,
                max,
                held,
                format!("{held} records, at max_results ({max}), and none is terminal"),
            ));
        };
        self.slots.remove_if_mut(&victim, |_, slot| {
            self.take_entry(slot, Some(&mut *order));
            slot.is_empty()
        });
        self.evicted.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(task_id = %victim, "resulthub.memory.evict");
        Ok(())
    }

    /// The record as it will be stored, or why it is refused. Changes nothing.
    fn admit(
        &self,
        slot: &Slot,
        task_id: &str,
        mut result: TaskResult,
    ) -> Result<TaskResult, BackendError> {
        if let Some(previous) = &slot.entry {
            validate::terminal_policy(task_id, Some(previous.record.status), &self.config)?;
            result.inherit_task_fields(&previous.record);
        }
        validate::record_size(&result, &self.config)?;
        Ok(result)
    }

    fn apply(
        &self,
        mut slot: RefMut<'_, String, Slot>,
        record: TaskResult,
        eviction: Option<&mut EvictionOrder>,
    ) {
        let stored = self.next_store.fetch_add(1, Ordering::Relaxed);
        let expires_at = self
            .config
            .ttl(record.is_terminal())
            .and_then(|ttl| self.config.clock.now().checked_add(ttl));
        let Slot { entry, waiters } = &mut *slot;
        if let Some(order) = eviction {
            if let Some(previous) = entry {
                order.terminal.remove(&previous.stored);
                if let Some(at) = previous.expires_at {
                    order.expiry.remove(&(at, previous.stored));
                }
            }
            if record.is_terminal() && self.config.max_results.is_some() {
                order.terminal.insert(stored, record.task_id.clone());
            }
            if let Some(at) = expires_at {
                order.expiry.insert((at, stored), record.task_id.clone());
            }
        }
        let entry = match entry {
            Some(entry) => {
                entry.record = record;
                entry.stored = stored;
                entry.expires_at = expires_at;
                entry
            }
            None => {
                self.records.fetch_add(1, Ordering::AcqRel);
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                entry.insert(Entry {
                    record,
                    seq,
                    stored,
                    expires_at,
                })
            }
        };
        if entry.record.is_terminal() && !waiters.is_empty() {
            self.waiter_count.fetch_sub(waiters.len(), Ordering::AcqRel);
            for (_, sender) in std::mem::take(waiters) {
                let _ = sender.send(entry.record.clone());
            }
        }
    }

    fn cancel_waiter(&self, task_id: &str, waiter_id: u64) {
        self.slots.remove_if_mut(task_id, |_, slot| {
            if slot.waiters.remove(&waiter_id).is_some() {
                self.waiter_count.fetch_sub(1, Ordering::AcqRel);
            }
            slot.is_empty()
        });
    }

    /// Takes one waiter place, or says which limit refused it.
    fn reserve_waiter(&self) -> Result<(), BackendError> {
        let before = self.waiter_count.fetch_add(1, Ordering::AcqRel);
        match self.config.max_waiters {
            Some(max) if before >= max => {
                self.waiter_count.fetch_sub(1, Ordering::AcqRel);
                Err(BackendError::overloaded(
                    Limit::MaxWaiters,
                    max,
                    before,
                    format!("{before} waiters, at max_waiters ({max})"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The live record of `task_id`, dropping it first if it has expired.
    fn live_record(&self, task_id: &str) -> Option<TaskResult> {
        let now = self.config.clock.now();
        {
            let slot = self.slots.get(task_id)?;
            let entry = slot.entry.as_ref()?;
            if entry.is_live(now) {
                return Some(entry.record.clone());
            }
        }
        let mut eviction = self.lock_eviction();
        self.slots.remove_if_mut(task_id, |_, slot| {
            self.drop_if_expired(slot, now, eviction.as_deref_mut());
            slot.is_empty()
        });
        None
    }
}

#[async_trait::async_trait]
impl ResultBackend for InMemoryBackend {
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        let status = result.status.as_str();
        let call = Call::begin(
            OperationKind::Store,
            op_span!(
                "resulthub::memory",
                "memory",
                OperationKind::Store,
                task_id,
                status
            ),
        );
        self.observe(call, || self.store_now(task_id, result))
    }

    /// Each record is stored as `store` would, one operation for the batch.
    async fn store_many(&self, records: Vec<TaskResult>) -> Vec<Result<(), BackendError>> {
        let call = self.call(OperationKind::StoreMany, None);
        call.count(records.len());
        let results: Vec<_> = call.in_span(|| {
            records
                .into_iter()
                .map(|record| {
                    let task_id = record.task_id.clone();
                    self.store_now(&task_id, record)
                })
                .collect()
        });
        call.end(Some(&self.operations), Outcome::of_batch(&results));
        results
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        let call = self.call(OperationKind::Get, Some(task_id));
        self.observe(call, || self.get_now(task_id))
    }

    async fn get_many(&self, task_ids: &[&str]) -> Result<Vec<Option<TaskResult>>, BackendError> {
        let call = self.call(OperationKind::GetMany, None);
        call.count(task_ids.len());
        self.observe(call, || {
            crate::many::non_empty(task_ids, "get_many")?;
            task_ids
                .iter()
                .map(|task_id| self.get_now(task_id))
                .collect()
        })
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        let call = self.call(OperationKind::WaitFor, Some(task_id));
        call.run(|| Some(&self.operations), self.wait(task_id, timeout))
            .await
    }

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        let call = self.call(OperationKind::Delete, Some(task_id));
        self.observe(call, || self.delete_now(task_id))
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        let call = self.call(OperationKind::Clear, None);
        self.observe(call, || Ok(self.clear_now()))
    }

    async fn list_page(
        &self,
        status: TaskStatus,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page, BackendError> {
        let call = self.call(OperationKind::ListPage, None);
        self.observe(call, || self.list_page_now(status, limit, after))
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let call = self.call(OperationKind::ListByStatus, None);
        self.observe(call, || Ok(self.list_by_status_now(status, limit, offset)))
    }
}

/// The operations themselves, counted and traced by the trait's methods above.
impl InMemoryBackend {
    fn store_now(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        validate::store(task_id, &result, &self.config)?;
        tracing::debug!(task_id = %task_id, status = %result.status, "resulthub.memory.store");
        let mut eviction = self.lock_eviction();
        let now = self.config.clock.now();
        if let Some(order) = eviction.as_deref_mut() {
            // Expired records make room before anything is evicted.
            self.expire_due(order, now);
        }
        let mut slot = self.slots.entry(task_id.to_owned()).or_default();
        self.drop_if_expired(&mut slot, now, eviction.as_deref_mut());
        let record = match self.admit(&slot, task_id, result) {
            Ok(record) => record,
            Err(error) => {
                drop(slot);
                self.remove_if_empty(task_id);
                return Err(error);
            }
        };
        if slot.entry.is_none() {
            if let (Some(max), Some(order)) = (self.config.max_results, eviction.as_deref_mut()) {
                if self.records.load(Ordering::Acquire) >= max {
                    // The victim may share this shard: release it first. The eviction lock
                    // keeps every other change out meanwhile, so `record` stays valid.
                    drop(slot);
                    if let Err(error) = self.evict_oldest(order, max) {
                        self.remove_if_empty(task_id);
                        return Err(error);
                    }
                    slot = self.slots.entry(task_id.to_owned()).or_default();
                }
            }
        }
        self.apply(slot, record, eviction.as_deref_mut());
        Ok(())
    }

    fn get_now(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        validate::id_length(task_id, &self.config)?;
        Ok(self.live_record(task_id))
    }

    async fn wait(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
        tracing::debug!(task_id = %task_id, "resulthub.memory.wait_for");
        let waiter_id = self.next_waiter_id.fetch_add(1, Ordering::Relaxed);
        let now = self.config.clock.now();
        let receiver = {
            // Checking the record and registering under the same shard lock is what makes a
            // racing store unable to slip in between.
            let mut slot = self.slots.entry(task_id.to_owned()).or_default();
            if let Some(entry) = slot.entry.as_ref().filter(|entry| entry.is_live(now)) {
                if entry.record.is_terminal() {
                    return Ok(entry.record.clone());
                }
            }
            // Only a caller that will actually wait takes a place.
            if let Err(error) = self.reserve_waiter() {
                let empty = slot.is_empty();
                drop(slot);
                if empty {
                    self.slots.remove_if(task_id, |_, slot| slot.is_empty());
                }
                return Err(error);
            }
            let (sender, receiver) = oneshot::channel();
            slot.waiters.insert(waiter_id, sender);
            receiver
        };
        let pending = LocalWait {
            backend: self,
            task_id,
            waiter_id,
            receiver,
            registered: true,
        };
        crate::wait::bounded(task_id, pending, timeout).await
    }

    fn delete_now(&self, task_id: &str) -> Result<bool, BackendError> {
        validate::id_length(task_id, &self.config)?;
        let mut eviction = self.lock_eviction();
        let now = self.config.clock.now();
        let mut existed = false;
        self.slots.remove_if_mut(task_id, |_, slot| {
            self.drop_if_expired(slot, now, eviction.as_deref_mut());
            existed = self.take_entry(slot, eviction.as_deref_mut()).is_some();
            slot.is_empty()
        });
        Ok(existed)
    }

    fn clear_now(&self) -> usize {
        let mut eviction = self.lock_eviction();
        let now = self.config.clock.now();
        let mut removed = 0;
        self.slots.retain(|_, slot| {
            self.drop_if_expired(slot, now, eviction.as_deref_mut());
            if self.take_entry(slot, eviction.as_deref_mut()).is_some() {
                removed += 1;
            }
            !slot.is_empty()
        });
        self.slots.shrink_to_fit();
        removed
    }

    /// One pass over the records, keeping the `limit + 1` first after `after` in a bounded
    /// heap: a record is cloned only when it may be on the page.
    fn list_page_now(
        &self,
        status: TaskStatus,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page, BackendError> {
        let after = crate::page::position(limit, after)?;
        let keep = limit.saturating_add(1);
        let now = self.config.clock.now();
        let mut first: BinaryHeap<ByKey> = BinaryHeap::new();
        for slot in &self.slots {
            let Some(entry) = slot.entry.as_ref().filter(|entry| entry.is_live(now)) else {
                continue;
            };
            let key = ListKey {
                submitted_at: entry.record.submitted_at,
                seq: entry.seq,
            };
            if entry.record.status != status || after.is_some_and(|after| key <= after) {
                continue;
            }
            if first.len() < keep {
                first.push(ByKey(key, entry.record.clone()));
            } else if first.peek().is_some_and(|last| key < last.0) {
                first.pop();
                first.push(ByKey(key, entry.record.clone()));
            }
        }
        let mut page = first.into_sorted_vec();
        let next = (page.len() > limit).then(|| {
            page.truncate(limit);
            page.last().map(|last| Cursor::after_key(last.0))
        });
        let records = page.into_iter().map(|ByKey(_, record)| record).collect();
        Ok(Page::new(records, next.flatten()))
    }

    fn list_by_status_now(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<TaskResult> {
        let now = self.config.clock.now();
        let mut keyed: Vec<(ListKey, TaskResult)> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let entry = slot.entry.as_ref().filter(|entry| entry.is_live(now))?;
                (entry.record.status == status).then(|| {
                    let key = ListKey {
                        submitted_at: entry.record.submitted_at,
                        seq: entry.seq,
                    };
                    (key, entry.record.clone())
                })
            })
            .collect();
        keyed.sort_unstable_by_key(|(key, _)| *key);
        page(keyed.into_iter().map(|(_, record)| record), limit, offset)
    }
}

/// A registered waiter of an [`InMemoryBackend`]; dropping it unregisters it.
struct LocalWait<'a> {
    backend: &'a InMemoryBackend,
    task_id: &'a str,
    waiter_id: u64,
    receiver: oneshot::Receiver<TaskResult>,
    registered: bool,
}

impl Future for LocalWait<'_> {
    type Output = Result<TaskResult, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = futures_util::ready!(Pin::new(&mut self.receiver).poll(cx));
        // A store took the sender out of the slot to answer it: nothing left to unregister.
        self.registered = false;
        Poll::Ready(outcome.map_err(|_| BackendError::Unavailable {
            reason: "the waiter was dropped by the backend".to_owned(),
        }))
    }
}

impl Drop for LocalWait<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.backend.cancel_waiter(self.task_id, self.waiter_id);
        }
    }
}

/// A record in a listing heap, ordered by its place in the listing only.
struct ByKey(ListKey, TaskResult);

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for ByKey {}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, ManualClock};

    /// With a TTL and no `max_results`, expired records must leave memory as stores go on,
    /// not only when their id is touched again or `stats()` sweeps.
    #[tokio::test]
    async fn expired_records_leave_memory_as_stores_go_on() {
        let clock = ManualClock::new();
        let backend = InMemoryBackend::with_config(HubConfig {
            result_ttl: Some(Duration::from_secs(1)),
            clock: Clock::from(clock.clone()),
            ..HubConfig::default()
        });
        for n in 0..1_000 {
            let id = format!("old-{n}");
            let record = TaskResult::new(&id, TaskStatus::Success);
            backend.store(&id, record).await.unwrap();
        }
        clock.advance(Duration::from_secs(2));
        backend
            .store("new", TaskResult::new("new", TaskStatus::Success))
            .await
            .unwrap();
        assert_eq!(backend.slots.len(), 1, "only the new record is held");
        assert_eq!(backend.expired.load(Ordering::Acquire), 1_000);
    }
}
