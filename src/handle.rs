//! The cloneable handle callers use: [`ResultBackend`] over the hub's queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use actix::{Actor, Addr};
use futures_util::future::{BoxFuture, Either};
use tokio::sync::oneshot;

use crate::compact::CompactRecord;
use crate::events::{EventFilter, EventStream};
use crate::hub::handlers::{pack_checked, unpack_all};
use crate::hub::ops::{Op, Queued, Reply, StoreAnswer};
use crate::hub::pending::PendingWait;
use crate::hub::records::{Read, SharedRecord};
use crate::hub::shared::Shared;
use crate::hub::thread::HubThread;
use crate::hub::{Introduce, Mailed};
use crate::operations::{Call, Carried, OperationKind, Operations, Outcome, op_span};
use crate::{
    BackendError, Cursor, HubConfig, HubStats, OperationMetrics, Page, ResultBackend, ResultHub,
    TaskResult, TaskStatus, validate,
};

/// A cheap, cloneable handle to a [`ResultHub`]; it implements [`ResultBackend`] by messaging
/// the hub.
///
/// Clone it freely (an `Addr` and an `Arc` inside) and share it across tasks and threads; there
/// is no need for `Arc<Mutex<_>>`. Every operation is delivered to the hub even if the caller
/// stops awaiting it midway, and the hub handles one caller's operations in the order they were
/// made, so a `get` sees that caller's earlier `store`. A pipelined store
/// ([`HubConfig::pipeline_stores`]) is queued when `store` is called, as actix's `Addr::send`
/// queues a message: its future only waits for room when the hub is far behind.
///
/// # Examples
///
/// From a plain tokio program:
///
/// ```
/// use std::time::Duration;
/// use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resulthub::BackendError> {
/// let hub = HubHandle::spawn(HubConfig::default());
///
/// let waiter = tokio::spawn({
///     let hub = hub.clone();
///     async move { hub.wait_for("job-1", Some(Duration::from_secs(5))).await }
/// });
/// hub.store("job-1", TaskResult::new("job-1", TaskStatus::Running)).await?;
/// hub.store("job-1", TaskResult::new("job-1", TaskStatus::Success).with_result(42)).await?;
///
/// let record = waiter.await.unwrap()?;
/// assert_eq!(record.result, 42);
/// hub.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HubHandle {
    addr: Addr<ResultHub>,
    /// The hub's queue and record map: known from the start for `start` and `spawn`, told by
    /// the hub soon after `from_addr`. Shared by every clone.
    shared: Arc<OnceLock<Arc<Shared>>>,
    /// Set when [`HubHandle::spawn`] made the hub's thread; shared by every clone.
    thread: Option<Arc<HubThread>>,
}

impl HubHandle {
    /// Starts a hub on the current actix arbiter and returns its handle.
    ///
    /// Use it inside a running actix System: an actix or actix-web app, `#[actix_rt::main]`,
    /// `#[actix_rt::test]`.
    ///
    /// # Panics
    ///
    /// Outside an actix System; use [`HubHandle::spawn`] there.
    pub fn start(config: HubConfig) -> HubHandle {
        if actix_rt::System::try_current().is_none() || actix_rt::Arbiter::try_current().is_none() {
            panic!(
                "HubHandle::start needs a running actix System on this thread; \
                 from plain tokio or non-async code use HubHandle::spawn"
            );
        }
        let hub = ResultHub::new(config);
        let shared = hub.shared();
        HubHandle::with_shared(hub.start(), shared, None)
    }

    /// Starts a hub on a new thread running its own actix System, and returns its handle.
    ///
    /// Works from anywhere: `#[tokio::main]` and `#[tokio::test]` of either flavour, or
    /// non-async code. The thread ends when the hub stops ([`shutdown`](Self::shutdown)), or
    /// when the last clone of this handle is dropped.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as [`std::thread::spawn`] does).
    pub fn spawn(config: HubConfig) -> HubHandle {
        let (addr, shared, thread) = HubThread::start(config);
        HubHandle::with_shared(addr, shared, Some(Arc::new(thread)))
    }

    fn with_shared(
        addr: Addr<ResultHub>,
        shared: Arc<Shared>,
        thread: Option<Arc<HubThread>>,
    ) -> HubHandle {
        HubHandle {
            addr,
            shared: Arc::new(OnceLock::from(shared)),
            thread,
        }
    }

    /// A handle to a hub that actix code started itself (under a supervisor, from the
    /// registry, ...).
    ///
    /// The hub tells the handle where its queue is as soon as it handles the handle's first
    /// message; until then every operation travels through the mailbox and waits for the
    /// hub's answer. It does not keep a [`spawn`](Self::spawn)ed hub's thread alive: that
    /// thread ends with the last handle `spawn` returned (or its clones).
    pub fn from_addr(addr: Addr<ResultHub>) -> HubHandle {
        let shared = Arc::new(OnceLock::new());
        addr.do_send(Introduce(Arc::clone(&shared)));
        HubHandle {
            addr,
            shared,
            thread: None,
        }
    }

    /// The hub's actix address, for sending [`messages`](crate::messages) directly.
    pub fn addr(&self) -> &Addr<ResultHub> {
        &self.addr
    }

    /// What the [`ResultBackend`] calls made through this hub's handles (every handle of the
    /// hub, not only this one and its clones) have counted: operations by kind and outcome,
    /// and their latencies, as the callers saw them (see [`operations`](crate::operations)).
    /// Readable after the hub stopped. Actix [`messages`](crate::messages) sent to the hub's
    /// address are not counted.
    ///
    /// Empty for a [`from_addr`](Self::from_addr) handle until its hub has told it where its
    /// queue is (its first call does that).
    ///
    /// # Examples
    ///
    /// ```
    /// use resulthub::operations::{OperationKind, Outcome};
    /// use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// hub.store("t1", TaskResult::new("t1", TaskStatus::Success)).await?;
    /// hub.clone().get("t1").await?;
    /// let metrics = hub.operations();
    /// assert_eq!(metrics.count(OperationKind::Store, Outcome::Ok), 1);
    /// assert_eq!(metrics.count(OperationKind::Get, Outcome::Ok), 1);
    /// # hub.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn operations(&self) -> OperationMetrics {
        self.counters()
            .map(Operations::snapshot)
            .unwrap_or_default()
    }

    /// Where the hub counts its operations; `None` only for a `from_addr` handle its hub has
    /// not told yet.
    fn counters(&self) -> Option<&Operations> {
        self.shared.get().map(|shared| &shared.operations)
    }

    /// Counts what the hub holds. Changes nothing a caller could observe otherwise: records
    /// past their TTL, which every call drops first, are dropped here too.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn stats(&self) -> Result<HubStats, BackendError> {
        self.submit(|reply| Op::Stats { reply }, None).await
    }

    /// A stream of every change the hub applies from now on: one
    /// [`TaskEvent`](crate::TaskEvent) per store, delete, expiry, eviction and cleared record,
    /// in the hub's order.
    ///
    /// The subscription starts when the hub handles it, behind every operation queued before
    /// it: a store this handle made earlier (even one that returned before the hub applied it)
    /// is not reported, every later one is. Each subscriber has its own view of a buffer of
    /// [`HubConfig::event_buffer`] events; the hub never waits for it. A subscriber that falls
    /// further behind loses the oldest events and gets a [`HubEvent::Lagged`](crate::HubEvent)
    /// item saying how many, then goes on. The stream ends when the hub stops; dropping it
    /// unsubscribes.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use resulthub::{HubConfig, HubEvent, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// let mut events = hub.subscribe().await?;
    /// hub.store("t1", TaskResult::new("t1", TaskStatus::Running)).await?;
    /// hub.store("t1", TaskResult::new("t1", TaskStatus::Success)).await?;
    /// for expected in [TaskStatus::Running, TaskStatus::Success] {
    ///     match events.next().await {
    ///         Some(HubEvent::Task(event)) => assert_eq!(event.status, expected),
    ///         other => panic!("unexpected {other:?}"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn subscribe(&self) -> Result<EventStream, BackendError> {
        self.subscribe_with(EventFilter::default()).await
    }

    /// [`subscribe`](Self::subscribe), keeping only the events `filter` matches (by status,
    /// task id, or both). The filter runs on the subscriber's side: events it drops still count
    /// towards the buffer, and a [`HubEvent::Lagged`](crate::HubEvent) counts them too.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use resulthub::{EventFilter, HubConfig, HubEvent, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// let mut failures = hub.subscribe_with(EventFilter::status(TaskStatus::Failed)).await?;
    /// hub.store("a", TaskResult::new("a", TaskStatus::Success)).await?;
    /// hub.store("b", TaskResult::new("b", TaskStatus::Failed).with_error("boom")).await?;
    /// let Some(HubEvent::Task(event)) = failures.next().await else { unreachable!() };
    /// assert_eq!(event.task_id, "b");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn subscribe_with(&self, filter: EventFilter) -> Result<EventStream, BackendError> {
        let (_, receiver) = self
            .submit(
                |reply| Op::Subscribe {
                    resumable: false,
                    after: None,
                    reply,
                },
                None,
            )
            .await?;
        Ok(EventStream::new(receiver, filter))
    }

    /// [`subscribe_with`](Self::subscribe_with) for a subscriber that resumes: the stream
    /// starts with the events after `after` (the [`TaskEvent::id`](crate::TaskEvent::id) of the
    /// last one it saw) that the hub still holds, and a [`HubEvent::Lagged`](crate::HubEvent)
    /// first if it no longer holds them all; then the live events, with no gap and no repeat.
    /// `None` starts with every event held; an id of another hub (or of this one before a
    /// restart) too, after a `Lagged` (`missed` 0 when the count is unknown).
    ///
    /// From the first such subscription on, the hub holds its latest
    /// [`event_buffer`](crate::HubConfig::event_buffer) events, and builds events even while
    /// nobody listens, so that a subscriber that reconnects misses nothing: a cost per change
    /// that a hub without resumable subscribers does not pay. `/events` of the web front
    /// subscribes this way, with the `Last-Event-ID` a reconnecting browser sends.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use resulthub::{EventFilter, HubConfig, HubEvent, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// let mut events = hub.subscribe_after(EventFilter::default(), None).await?;
    /// hub.store("a", TaskResult::new("a", TaskStatus::Success)).await?;
    /// let Some(HubEvent::Task(seen)) = events.next().await else { unreachable!() };
    /// drop(events); // the connection drops...
    /// hub.store("b", TaskResult::new("b", TaskStatus::Success)).await?;
    /// // ...and the subscriber comes back for what it missed.
    /// let mut events = hub.subscribe_after(EventFilter::default(), Some(seen.id)).await?;
    /// let Some(HubEvent::Task(missed)) = events.next().await else { unreachable!() };
    /// assert_eq!(missed.task_id, "b");
    /// # hub.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<crate::EventId>,
    ) -> Result<EventStream, BackendError> {
        let (backlog, receiver) = self
            .submit(
                |reply| Op::Subscribe {
                    resumable: true,
                    after,
                    reply,
                },
                None,
            )
            .await?;
        Ok(EventStream::resumed(backlog, receiver, filter))
    }

    /// Every record the hub holds, in the order their ids were first stored: what
    /// [`restore`](Self::restore) takes to rebuild the hub elsewhere or after a restart.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn snapshot(&self) -> Result<Vec<TaskResult>, BackendError> {
        Ok(unpack_all(
            self.submit(|reply| Op::Snapshot { reply }, None).await?,
        ))
    }

    /// Stores `records` in the given order, as stores do (validated, sticky fields merged,
    /// waiters woken, TTLs counted from now), so a snapshot's listing order survives. All or
    /// none: if one record is invalid or refused by a limit or the terminal policy, nothing
    /// is stored. Room under `max_results` may come from evicting terminal records the hub
    /// held, never records of this restore. Returns how many records were stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let old = HubHandle::spawn(HubConfig::default());
    /// old.store("a", TaskResult::new("a", TaskStatus::Success)).await?;
    /// old.store("b", TaskResult::new("b", TaskStatus::Running)).await?;
    /// let saved = old.snapshot().await?;
    /// old.shutdown().await;
    ///
    /// let new = HubHandle::spawn(HubConfig::default());
    /// assert_eq!(new.restore(saved).await?, 2);
    /// assert!(new.get("a").await?.unwrap().is_success());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackendError::InvalidInput`], [`BackendError::Overloaded`] or
    /// [`BackendError::Conflict`] naming the first record refused; nothing is stored.
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn restore(&self, records: Vec<TaskResult>) -> Result<usize, BackendError> {
        // Packed here, on the caller's thread.
        let config = self.shared.get().map(|shared| &shared.config);
        let records = pack_checked(records, config)?;
        self.submit(|reply| Op::Restore { records, reply }, None)
            .await
    }

    /// Stops the hub for good, after every operation queued before it has been applied.
    ///
    /// Pending `wait_for` calls then end with [`BackendError::Unavailable`], as does every later
    /// call through any handle, a supervised or registry hub included. If
    /// [`spawn`](Self::spawn) made the hub's thread, this also ends and joins it. Calling it
    /// again is harmless.
    pub async fn shutdown(&self) {
        // Queued (and the queue closed) before anything is awaited: a shutdown whose caller
        // stops awaiting it still happens, in full. An error means the hub is gone already,
        // which is what was asked.
        let stopped = self.submit(
            |reply| Op::Shutdown {
                snapshot: false,
                reply,
            },
            None,
        );
        let _ = stopped.await;
        if let Some(thread) = &self.thread {
            thread.stop_and_join().await;
        }
    }

    /// Stops the hub for good like [`shutdown`](Self::shutdown), and returns every record it
    /// held at that moment, in first-store order: taken in the same step as the shutdown, so no
    /// store acknowledged before it is missing, as one could be between a
    /// [`snapshot`](Self::snapshot) and a `shutdown`. Feed the records to
    /// [`restore`](Self::restore) (or [`jsonl`](crate::jsonl)) to carry them across a restart.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub had already stopped.
    pub async fn shutdown_and_snapshot(&self) -> Result<Vec<TaskResult>, BackendError> {
        let drained = self.submit(
            |reply| Op::Shutdown {
                snapshot: true,
                reply,
            },
            None,
        );
        let records = drained.await;
        if let Some(thread) = &self.thread {
            if records.is_ok() {
                thread.stop_and_join().await;
            }
        }
        Ok(unpack_all(records?))
    }

    /// The hub's configuration, asked for once if this handle does not know it; `None` if the
    /// hub has stopped.
    #[cfg(feature = "web")]
    pub(crate) async fn max_task_id_len(&self) -> Option<usize> {
        Some(self.introduced().await.ok()?.config.max_task_id_len)
    }

    /// Stores `result` and returns it as the hub stored it (task fields merged from the
    /// previous record), read in the same step as the store, so that no other writer's change
    /// can come between. Waits for the hub: never pipelined.
    #[cfg(feature = "web")]
    pub(crate) async fn store_merged(
        &self,
        task_id: &str,
        result: TaskResult,
    ) -> Result<TaskResult, BackendError> {
        let status = result.status.as_str();
        let call = Call::begin(
            OperationKind::Store,
            op_span!(
                "resulthub::hub",
                "hub",
                OperationKind::Store,
                task_id,
                status
            ),
        );
        let span = call.carried();
        let stored = async move {
            let shared = self.introduced().await?;
            validate::store(task_id, &result, &shared.config)?;
            let at = shared.store_time();
            let stored = self.submit(
                |reply| Op::Store {
                    task_id: Arc::from(task_id),
                    record: Arc::new(CompactRecord::pack(result)),
                    at,
                    answer: StoreAnswer::Merged(reply),
                },
                span,
            );
            // Unpacked here, on the caller's thread.
            Ok(stored.await?.unpack(task_id))
        };
        call.run(|| self.counters(), stored).await
    }

    /// Queues a store the hub answers once it applied it, at once; the future returned waits
    /// for the answer.
    fn queue_answered_store(
        &self,
        task_id: &str,
        result: TaskResult,
        span: Carried,
    ) -> impl Future<Output = Result<(), BackendError>> + Send + use<> {
        let checked = match self.shared.get() {
            Some(shared) => {
                validate::store(task_id, &result, &shared.config).map(|()| shared.store_time())
            }
            // The hub checks the id's length against its own limit.
            None => validate::shape(task_id, &result).map(|()| None),
        };
        let queued = checked.map(|at| {
            let task_id = Arc::from(task_id);
            // Packed here, on the caller's thread.
            let record = Arc::new(CompactRecord::pack(result));
            self.submit(
                move |reply| Op::Store {
                    task_id,
                    record,
                    at,
                    answer: StoreAnswer::Done(reply),
                },
                span,
            )
        });
        async move { queued?.await }
    }

    /// The record of `task_id` read from the map when it can tell, else a `Get` queued for
    /// the hub (at once) and the answer to await.
    #[allow(clippy::type_complexity)]
    fn read_or_ask(
        &self,
        task_id: &str,
        span: Carried,
    ) -> Result<
        Either<
            Option<TaskResult>,
            impl Future<Output = Result<Option<SharedRecord>, BackendError>> + Send + use<>,
        >,
        BackendError,
    > {
        if let Some(shared) = self.shared.get() {
            validate::id_length(task_id, &shared.config)?;
            if shared.is_closed() {
                return Err(BackendError::hub_stopped());
            }
            let now = || shared.config.clock.now();
            if let Read::Known(record) = shared.records.read(task_id, now) {
                // Unpacked here, on the caller's thread.
                return Ok(Either::Left(record.map(|record| record.unpack(task_id))));
            }
        }
        let task_id = Arc::from(task_id);
        Ok(Either::Right(
            self.submit(move |reply| Op::Get { task_id, reply }, span),
        ))
    }

    /// The hub's queue, after waiting for the hub to tell a `from_addr` handle where it is.
    async fn introduced(&self) -> Result<&Arc<Shared>, BackendError> {
        if self.shared.get().is_none() {
            // Behind the introduction in the mailbox: once answered, the handle knows.
            self.submit(|reply| Op::Stats { reply }, None).await?;
        }
        self.shared.get().ok_or_else(BackendError::hub_stopped)
    }

    /// Queues the operation `make` builds, at once, to be applied inside `span`: a caller
    /// that stops awaiting the answer does not take the operation back. A hub that is gone
    /// drops it, which closes the reply channel: that is `Unavailable`, never a hang.
    fn submit<T, F>(
        &self,
        make: F,
        span: Carried,
    ) -> impl Future<Output = Result<T, BackendError>> + use<T, F>
    where
        F: FnOnce(Reply<T>) -> Op,
    {
        let (reply, answer) = oneshot::channel();
        let op = make(reply);
        match self.shared.get() {
            // A closed queue hands the operation back; dropping it answers Unavailable.
            Some(shared) => drop(shared.push(op, span).err()),
            None => self.addr.do_send(Mailed(Queued { op, span })),
        }
        async move {
            answer
                .await
                .unwrap_or_else(|_| Err(BackendError::hub_stopped()))
        }
    }
}

#[async_trait::async_trait]
impl ResultBackend for HubHandle {
    // Written out rather than `async fn`: a pipelined store is queued here, when called (as
    // actix's `Addr::send` queues), and the future returned only waits for room when the hub
    // is far behind. The common case then allocates no future and moves no record into one,
    // and is counted here, with no future around it either.
    fn store<'life0, 'life1, 'async_trait>(
        &'life0 self,
        task_id: &'life1 str,
        result: TaskResult,
    ) -> BoxFuture<'async_trait, Result<(), BackendError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let status = result.status.as_str();
        let call = Call::begin(
            OperationKind::Store,
            op_span!(
                "resulthub::hub",
                "hub",
                OperationKind::Store,
                task_id,
                status
            ),
        );
        let Some(shared) = self.shared.get().filter(|shared| shared.pipelines_stores()) else {
            let answered = self.queue_answered_store(task_id, result, call.carried());
            return Box::pin(call.run(|| self.counters(), answered));
        };
        let counters = Some(&shared.operations);
        match queue_store(shared, task_id, result, call.carried()) {
            Ok(number) if shared.has_room(number) => {
                call.end(counters, Outcome::Ok);
                Box::pin(Accepted)
            }
            Ok(number) => Box::pin(call.run(move || counters, shared.wait_for_room(number))),
            Err(error) => {
                call.end(counters, Outcome::of_error(&error));
                Box::pin(std::future::ready(Err(error)))
            }
        }
    }

    /// Every store of the batch is queued before any is awaited: one doorbell for the batch,
    /// and when stores are pipelined, one wait for room, behind the last.
    async fn store_many(&self, records: Vec<TaskResult>) -> Vec<Result<(), BackendError>> {
        let call = Call::begin(
            OperationKind::StoreMany,
            op_span!("resulthub::hub", "hub", OperationKind::StoreMany),
        );
        call.count(records.len());
        let span = call.carried();
        let stored = async move {
            let Some(shared) = self.shared.get().filter(|shared| shared.pipelines_stores()) else {
                let answers: Vec<_> = records
                    .into_iter()
                    .map(|record| {
                        let task_id = record.task_id.clone();
                        self.queue_answered_store(&task_id, record, span.clone())
                    })
                    .collect();
                return futures_util::future::join_all(answers).await;
            };
            let queued: Vec<Result<u64, BackendError>> = records
                .into_iter()
                .map(|record| {
                    let task_id = record.task_id.clone();
                    queue_store(shared, &task_id, record, span.clone())
                })
                .collect();
            let last = queued.iter().flatten().max().copied();
            let room = match last {
                Some(number) => shared.wait_for_room(number).await,
                None => Ok(()),
            };
            let applied = shared.applied();
            queued
                .into_iter()
                .map(|outcome| match outcome {
                    // The hub died: the stores it had not applied are lost.
                    Ok(number) if room.is_err() && number > applied => {
                        Err(BackendError::hub_stopped())
                    }
                    other => other.map(drop),
                })
                .collect()
        };
        let outcome = |results: &Vec<_>| Outcome::of_batch(results);
        call.run_with(|| self.counters(), outcome, stored).await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        let call = Call::begin(
            OperationKind::Get,
            op_span!("resulthub::hub", "hub", OperationKind::Get, task_id),
        );
        // Most reads are answered from the map, at once: counted here, with no future around.
        match self.read_or_ask(task_id, call.carried()) {
            Ok(Either::Left(record)) => {
                call.end(self.counters(), Outcome::Ok);
                Ok(record)
            }
            Err(error) => {
                call.end(self.counters(), Outcome::of_error(&error));
                Err(error)
            }
            Ok(Either::Right(asked)) => {
                let asked = async move { Ok(asked.await?.map(|record| record.unpack(task_id))) };
                call.run(|| self.counters(), asked).await
            }
        }
    }

    /// Every id is read from the map, or asked of the hub, before any answer is awaited: one
    /// doorbell for the ids only the hub can answer.
    async fn get_many(&self, task_ids: &[&str]) -> Result<Vec<Option<TaskResult>>, BackendError> {
        let call = Call::begin(
            OperationKind::GetMany,
            op_span!("resulthub::hub", "hub", OperationKind::GetMany),
        );
        call.count(task_ids.len());
        let span = call.carried();
        let read = async move {
            crate::many::non_empty(task_ids, "get_many")?;
            let reads = task_ids
                .iter()
                .map(|task_id| self.read_or_ask(task_id, span.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            let mut records = Vec::with_capacity(reads.len());
            for (read, task_id) in reads.into_iter().zip(task_ids) {
                records.push(match read {
                    Either::Left(record) => record,
                    Either::Right(asked) => asked.await?.map(|record| record.unpack(task_id)),
                });
            }
            Ok(records)
        };
        call.run(|| self.counters(), read).await
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        let call = Call::begin(
            OperationKind::WaitFor,
            op_span!("resulthub::hub", "hub", OperationKind::WaitFor, task_id),
        );
        let span = call.carried();
        call.run(|| self.counters(), self.wait(task_id, timeout, span))
            .await
    }

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        let call = Call::begin(
            OperationKind::Delete,
            op_span!("resulthub::hub", "hub", OperationKind::Delete, task_id),
        );
        let deleted = self.submit(
            |reply| Op::Delete {
                task_id: Arc::from(task_id),
                reply,
            },
            call.carried(),
        );
        call.run(|| self.counters(), deleted).await
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        let call = Call::begin(
            OperationKind::Clear,
            op_span!("resulthub::hub", "hub", OperationKind::Clear),
        );
        let cleared = self.submit(|reply| Op::Clear { reply }, call.carried());
        call.run(|| self.counters(), cleared).await
    }

    async fn list_page(
        &self,
        status: TaskStatus,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page, BackendError> {
        let call = Call::begin(
            OperationKind::ListPage,
            op_span!("resulthub::hub", "hub", OperationKind::ListPage),
        );
        let span = call.carried();
        let listed = async move {
            let after = crate::page::position(limit, after)?;
            let page = self.submit(
                |reply| Op::ListPage {
                    status,
                    limit,
                    after,
                    reply,
                },
                span,
            );
            let (records, next) = page.await?;
            Ok(Page::new(unpack_all(records), next.map(Cursor::after_key)))
        };
        call.run(|| self.counters(), listed).await
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let call = Call::begin(
            OperationKind::ListByStatus,
            op_span!("resulthub::hub", "hub", OperationKind::ListByStatus),
        );
        let page = self.submit(
            |reply| Op::ListByStatus {
                status,
                limit,
                offset,
                reply,
            },
            call.carried(),
        );
        let listed = async move { Ok(unpack_all(page.await?)) };
        call.run(|| self.counters(), listed).await
    }
}

impl HubHandle {
    /// `wait_for`, its span to be carried with what it queues.
    async fn wait(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
        span: Carried,
    ) -> Result<TaskResult, BackendError> {
        // A wait changes nothing, so it may wait for the introduction.
        let shared = self.introduced().await?;
        validate::waitable_id(task_id, &shared.config)?;
        if shared.is_closed() {
            return Err(BackendError::hub_stopped());
        }
        let now = || shared.config.clock.now();
        if let Read::Known(Some(record)) = shared.records.read(task_id, now) {
            if record.is_terminal() {
                return Ok(record.unpack(task_id));
            }
        }
        let task_id: Arc<str> = Arc::from(task_id);
        if timeout == Some(Duration::ZERO) {
            // A poll: the hub answers with what it holds once it gets to the call, and never
            // keeps a waiter. (It may have stores of this caller to apply first.)
            let polled = self.submit(
                |reply| Op::WaitFor {
                    task_id: Arc::clone(&task_id),
                    poll: true,
                    reply,
                },
                span,
            );
            return Ok(polled.await?.unpack(&task_id));
        }
        shared.check_room_for_waiter()?;
        let (reply, answer) = oneshot::channel();
        let op = Op::WaitFor {
            task_id: Arc::clone(&task_id),
            poll: false,
            reply,
        };
        shared
            .push(op, span)
            .map_err(|_| BackendError::hub_stopped())?;
        // The timeout counts from here, the call, not from when the hub gets to it.
        let pending = PendingWait::new(Arc::clone(&task_id), answer, Arc::clone(shared));
        crate::wait::bounded(&task_id, pending, timeout).await
    }
}

/// Queues a pipelined store at once; returns its number in the queue.
fn queue_store(
    shared: &Shared,
    task_id: &str,
    result: TaskResult,
    span: Carried,
) -> Result<u64, BackendError> {
    validate::store(task_id, &result, &shared.config)?;
    let at = shared.store_time();
    // Packed here, on the caller's thread.
    shared.push_pipelined(task_id, CompactRecord::pack(result), at, span)
}

/// The answer to a store that needs no waiting: a future without state, which a `Box` holds
/// without allocating.
struct Accepted;

impl Future for Accepted {
    type Output = Result<(), BackendError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}
