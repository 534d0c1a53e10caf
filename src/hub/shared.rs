//! What a hub shares with its handles: its configuration, the record map, and the one ordered
//! queue every handle pushes its operations onto.
//!
//! The actix mailbox is only the doorbell: a push that finds the hub idle sends it one
//! [`Doorbell`] message, and the hub then applies everything queued, in order,
//! until the queue is empty. Bursts cost one message, not one per operation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use actix::WeakAddr;
use tokio::sync::Notify;

use super::ops::{Op, Queued, StoreAnswer};
use super::records::Records;
use super::{Doorbell, ResultHub};
use crate::compact::CompactRecord;
use crate::operations::{Carried, Operations};
use crate::{BackendError, HubConfig, Limit, TerminalPolicy};

/// How many operations a hub's handles may have queued that the hub has not applied yet before
/// a pipelined store (see [`HubConfig::pipeline_stores`]) waits for room: the store is queued
/// at once, and returns when the hub is at most this many operations behind it. Bounds the
/// queue's memory and how far a fast producer runs ahead of the waiters its stores wake
/// (docs/benchmarks.md measures the choice).
pub const MAX_UNAPPLIED: usize = 256;

/// [`MAX_UNAPPLIED`] while the hub holds waiters: a store then returns when the hub is at most
/// this many operations behind it, so that the hub stays close to what it must wake waiters
/// for (on the caller's arbiter the hub only runs when callers park). Without waiters nobody
/// is kept waiting by the hub being behind (a `get` reads its caller's own pipelined stores),
/// and the larger bound parks producers less often (docs/benchmarks.md measures both).
pub const MAX_UNAPPLIED_WHILE_WAITING: usize = 64;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: HubConfig,
    pub(crate) records: Records,
    /// What every handle of this hub counts of its operations.
    pub(crate) operations: Operations,
    queue: Mutex<Queue>,
    /// How many pushed operations the hub has applied (or answered as stopped).
    applied: AtomicU64,
    /// How many waiters the hub holds, as of its last operation: lets a handle refuse a wait
    /// past `max_waiters` without a round trip.
    waiters: AtomicUsize,
    /// Set with the queue's `closed`, readable without its lock.
    closed: AtomicBool,
    /// Set when the hub is gone and dropped what was queued: nothing more will be applied.
    dead: AtomicBool,
    /// Woken when the hub has applied a turn, or died: stores waiting for room.
    room: Notify,
    /// The hub's address, to ring; weak, so that the queue keeps no hub alive.
    doorbell: OnceLock<WeakAddr<ResultHub>>,
}

/// What the hub applied from the queue since it last said.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    ops: u64,
    untracked: usize,
}

impl Applied {
    pub(crate) fn count(&mut self, Queued { op, .. }: &Queued) {
        self.ops += 1;
        if op.is_untracked_change() {
            self.untracked += 1;
        }
    }
}

#[derive(Debug)]
struct Queue {
    ops: VecDeque<Queued>,
    /// A doorbell is on its way or the hub is applying: a push needs not ring.
    scheduled: bool,
    /// No more pushes: the hub is shutting down or gone.
    closed: bool,
    /// How many operations were ever pushed: the last one's number.
    pushed: u64,
    /// Changes queued that the record map's slots do not track (see `records`).
    untracked: usize,
}

impl Shared {
    pub(crate) fn new(config: HubConfig) -> Self {
        Shared {
            config,
            records: Records::default(),
            operations: Operations::default(),
            queue: Mutex::new(Queue {
                ops: VecDeque::new(),
                // Until the hub has started and drained what came before it.
                scheduled: true,
                closed: false,
                pushed: 0,
                untracked: 0,
            }),
            applied: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            room: Notify::new(),
            doorbell: OnceLock::new(),
        }
    }

    /// Whether a store that passed the handle's checks may return before the hub applied it:
    /// when asked for, and only if the hub cannot refuse it (no `max_results`, no
    /// `max_record_bytes`, `Overwrite`), so that an early `Ok` can never hide a refusal.
    pub(crate) fn pipelines_stores(&self) -> bool {
        self.config.pipeline_stores
            && self.config.terminal_policy == TerminalPolicy::Overwrite
            && self.config.max_results.is_none()
            && self.config.max_record_bytes.is_none()
    }

    /// When a store is made, for its TTL: only read when TTLs are set.
    pub(crate) fn store_time(&self) -> Option<Instant> {
        let config = &self.config;
        (config.result_ttl.is_some() || config.pending_ttl.is_some()).then(|| config.clock.now())
    }

    /// Refuses a new waiter when the hub was at `max_waiters` as of its last operation; the
    /// hub checks again when it registers it.
    pub(crate) fn check_room_for_waiter(&self) -> Result<(), BackendError> {
        let Some(max) = self.config.max_waiters else {
            return Ok(());
        };
        let waiters = self.waiters.load(Ordering::Relaxed);
        if waiters >= max {
            let reason = format!("{waiters} waiters, at max_waiters ({max})");
            return Err(BackendError::overloaded(
                Limit::MaxWaiters,
                max,
                waiters,
                reason,
            ));
        }
        Ok(())
    }

    pub(crate) fn publish_waiters(&self, waiters: usize) {
        self.waiters.store(waiters, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it; a poisoned queue is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `op`, to be applied inside `span`; a shutdown closes the queue in the same step.
    /// Returns the operation's number, or the operation back if the queue is closed.
    pub(crate) fn push(&self, op: Op, span: Carried) -> Result<u64, Queued> {
        let mut queue = self.lock();
        let (number, ring) = queue.push(Queued { op, span }, &self.closed)?;
        drop(queue);
        if ring {
            self.ring();
        }
        Ok(number)
    }

    /// Queues a pipelined store, folded in the record map under the id's lock. Returns its
    /// number, for [`wait_for_room`](Self::wait_for_room).
    pub(crate) fn push_pipelined(
        &self,
        task_id: &str,
        record: CompactRecord,
        at: Option<Instant>,
        span: Carried,
    ) -> Result<u64, BackendError> {
        let mut pushed = None;
        self.records
            .fold_and_queue(task_id, record, at, |task_id, record, fold| {
                let op = Op::Store {
                    task_id,
                    record,
                    at,
                    answer: StoreAnswer::Pipelined(fold),
                };
                let mut queue = self.lock();
                let opaque = queue.untracked > 0 || at.is_some();
                let (number, ring) = queue
                    .push(Queued { op, span }, &self.closed)
                    .map_err(|_| BackendError::hub_stopped())?;
                pushed = Some((number, ring));
                Ok(opaque)
            })?;
        let (number, ring) = pushed.ok_or_else(BackendError::hub_stopped)?;
        if ring {
            self.ring();
        }
        Ok(number)
    }

    fn ring(&self) {
        if let Some(hub) = self.doorbell.get().and_then(WeakAddr::upgrade) {
            hub.do_send(Doorbell);
        }
    }

    /// Whether the hub is close enough behind operation `number`: [`MAX_UNAPPLIED`]
    /// operations, or [`MAX_UNAPPLIED_WHILE_WAITING`] when it held waiters as of its last
    /// operation.
    pub(crate) fn has_room(&self, number: u64) -> bool {
        let bound = if self.waiters.load(Ordering::Relaxed) > 0 {
            MAX_UNAPPLIED_WHILE_WAITING
        } else {
            MAX_UNAPPLIED
        };
        self.applied.load(Ordering::Acquire) + bound as u64 >= number
    }

    /// How many pushed operations the hub has applied (or answered as stopped).
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Returns once the hub is at most [`MAX_UNAPPLIED`] operations behind operation
    /// `number`; `Unavailable` if the hub died without applying it.
    pub(crate) async fn wait_for_room(&self, number: u64) -> Result<(), BackendError> {
        let has_room = || self.has_room(number);
        if has_room() {
            return Ok(());
        }
        loop {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if has_room() {
                return Ok(());
            }
            if self.dead.load(Ordering::Acquire) {
                return if self.applied.load(Ordering::Acquire) >= number {
                    Ok(())
                } else {
                    Err(BackendError::hub_stopped())
                };
            }
            notified.await;
        }
    }

    // The hub's side.

    /// Called by the hub as it starts, so that pushes can ring it.
    pub(crate) fn hub_started(&self, hub: WeakAddr<ResultHub>) {
        let _ = self.doorbell.set(hub);
    }

    /// Moves everything queued into `backlog` (which the hub has emptied), after counting
    /// what the hub applied since the last call. `false`, and the hub is idle until the next
    /// doorbell, when nothing was queued.
    pub(crate) fn take(&self, backlog: &mut VecDeque<Queued>, applied: Applied) -> bool {
        let mut queue = self.lock();
        queue.untracked -= applied.untracked.min(queue.untracked);
        let found = !queue.ops.is_empty();
        if found {
            std::mem::swap(&mut queue.ops, backlog);
        } else {
            queue.scheduled = false;
        }
        drop(queue);
        self.publish(applied.ops);
        found
    }

    /// Counts what the hub applied, without taking more.
    pub(crate) fn count_applied(&self, applied: Applied) {
        let mut queue = self.lock();
        queue.untracked -= applied.untracked.min(queue.untracked);
        drop(queue);
        self.publish(applied.ops);
    }

    fn publish(&self, applied: u64) {
        if applied > 0 {
            self.applied.fetch_add(applied, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }

    /// The hub is about to drain the queue outside a doorbell (it starts, or a message came
    /// through the mailbox): no push needs to ring meanwhile.
    pub(crate) fn schedule(&self) {
        self.lock().scheduled = true;
    }

    /// The hub shut down: refuse pushes from now on.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.closed.store(true, Ordering::Release);
    }

    /// A shutdown failed (its snapshot did): the hub keeps serving.
    pub(crate) fn reopen(&self) {
        self.lock().closed = false;
        self.closed.store(false, Ordering::Release);
    }

    /// The hub is gone: refuse pushes, and drop what is queued, which answers each caller
    /// with `Unavailable`.
    pub(crate) fn hub_gone(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        self.closed.store(true, Ordering::Release);
        let dropped = std::mem::take(&mut queue.ops);
        drop(queue);
        drop(dropped);
        self.dead.store(true, Ordering::Release);
        self.room.notify_waiters();
    }
}

impl Queue {
    fn push(&mut self, queued: Queued, closed: &AtomicBool) -> Result<(u64, bool), Queued> {
        if self.closed {
            return Err(queued);
        }
        let op = &queued.op;
        if op.is_untracked_change() {
            self.untracked += 1;
        }
        if matches!(op, Op::Shutdown { .. }) {
            self.closed = true;
            closed.store(true, Ordering::Release);
        }
        self.ops.push_back(queued);
        self.pushed += 1;
        let ring = !self.scheduled;
        self.scheduled = true;
        Ok((self.pushed, ring))
    }
}
