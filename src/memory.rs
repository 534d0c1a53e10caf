//! A lock-sharded in-memory backend, with no actor in between.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::order::ListKey;
use crate::{BackendError, HubConfig, HubStats, ResultBackend, TaskResult, TaskStatus, validate};

/// A [`ResultBackend`] on a sharded concurrent map ([`dashmap`]): each operation locks only the
/// shard that holds its id, with no actor or thread hop in between.
///
/// It keeps the same contract as the hub and is its reference peer in tests and benchmarks.
/// Pick it when one process needs the lowest latency per call; pick the hub when you want one
/// owner of all state inside an actix application, or a bounded listing cost: this backend's
/// `list_by_status` sorts every record of the status on each call.
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
#[derive(Debug, Default)]
pub struct InMemoryBackend {
    config: HubConfig,
    slots: DashMap<String, Slot>,
    next_seq: AtomicU64,
    next_waiter_id: AtomicU64,
    waiter_count: AtomicUsize,
}

/// What one id holds: its record, if stored, and the callers waiting for it. A slot with
/// neither is removed.
#[derive(Debug, Default)]
struct Slot {
    entry: Option<Entry>,
    waiters: Vec<(u64, oneshot::Sender<TaskResult>)>,
}

#[derive(Debug)]
struct Entry {
    record: TaskResult,
    /// Numbers the id's first store: breaks listing ties.
    seq: u64,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.entry.is_none() && self.waiters.is_empty()
    }
}

impl InMemoryBackend {
    /// An empty backend with [`HubConfig::default`] limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty backend with these limits.
    pub fn with_config(config: HubConfig) -> Self {
        InMemoryBackend {
            config,
            ..Self::default()
        }
    }

    /// Counts what the backend holds. Walks every shard, so it costs O(records).
    pub fn stats(&self) -> HubStats {
        let mut stats = HubStats {
            waiters: self.waiter_count.load(Ordering::Acquire),
            ..HubStats::default()
        };
        for slot in self.slots.iter() {
            if let Some(entry) = &slot.entry {
                stats.results += 1;
                *stats.by_status.slot(entry.record.status) += 1;
            }
        }
        stats
    }

    fn cancel_waiter(&self, task_id: &str, waiter_id: u64) {
        self.slots.remove_if_mut(task_id, |_, slot| {
            if let Some(position) = slot.waiters.iter().position(|(id, _)| *id == waiter_id) {
                slot.waiters.swap_remove(position);
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
                Err(BackendError::Overloaded {
                    reason: format!("{before} waiters, at max_waiters ({max})"),
                })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl ResultBackend for InMemoryBackend {
    async fn store(&self, task_id: &str, mut result: TaskResult) -> Result<(), BackendError> {
        validate::store(task_id, &result, &self.config)?;
        tracing::debug!(name: "memory.store", task_id = %task_id, status = ?result.status);
        let mut slot = self.slots.entry(task_id.to_owned()).or_default();
        let Slot { entry, waiters } = &mut *slot;
        let record = match entry {
            Some(entry) => {
                result.inherit_task_fields(&entry.record);
                entry.record = result;
                &entry.record
            }
            None => {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                &entry
                    .insert(Entry {
                        record: result,
                        seq,
                    })
                    .record
            }
        };
        if record.is_complete() && !waiters.is_empty() {
            self.waiter_count.fetch_sub(waiters.len(), Ordering::AcqRel);
            for (_, sender) in std::mem::take(waiters) {
                let _ = sender.send(record.clone());
            }
        }
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        validate::id_length(task_id, &self.config)?;
        Ok(self
            .slots
            .get(task_id)
            .and_then(|slot| slot.entry.as_ref().map(|entry| entry.record.clone())))
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        validate::waitable_id(task_id, &self.config)?;
        tracing::debug!(name: "memory.wait_for", task_id = %task_id);
        let waiter_id = self.next_waiter_id.fetch_add(1, Ordering::Relaxed);
        let receiver = {
            // Checking the record and registering under the same shard lock is what makes a
            // racing store unable to slip in between.
            let mut slot = self.slots.entry(task_id.to_owned()).or_default();
            if let Some(entry) = &slot.entry {
                if entry.record.is_complete() {
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
            slot.waiters.push((waiter_id, sender));
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

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        validate::id_length(task_id, &self.config)?;
        let mut existed = false;
        self.slots.remove_if_mut(task_id, |_, slot| {
            existed = slot.entry.take().is_some();
            slot.is_empty()
        });
        Ok(existed)
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        let mut removed = 0;
        self.slots.retain(|_, slot| {
            if slot.entry.take().is_some() {
                removed += 1;
            }
            !slot.is_empty()
        });
        self.slots.shrink_to_fit();
        Ok(removed)
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let mut keyed: Vec<(ListKey, TaskResult)> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let entry = slot.entry.as_ref()?;
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
        let page = keyed.into_iter().skip(offset).map(|(_, record)| record);
        Ok(match limit {
            Some(limit) => page.take(limit).collect(),
            None => page.collect(),
        })
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
        let outcome = futures::ready!(Pin::new(&mut self.receiver).poll(cx));
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
