//! The cloneable handle callers use: [`ResultBackend`] over messages to the hub.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::{Actor, Addr, Handler, Message};
use tokio::sync::{oneshot, watch};

use crate::compact::CompactRecord;
use crate::events::{EventFilter, EventStream};
use crate::hub::HubShared;
use crate::hub::pack_checked;
use crate::hub::state::Keyed;
use crate::messages::{
    Await, Awaited, Clear, Delete, Drain, Dump, Envelope, Fetch, Introduce, Load, Page, Put,
    Restore, Shutdown, Stats, Store, Subscribe,
};
use crate::{
    BackendError, HubConfig, HubStats, ResultBackend, ResultHub, TaskResult, TaskStatus, validate,
};

/// A cheap, cloneable handle to a [`ResultHub`]; it implements [`ResultBackend`] by messaging
/// the hub.
///
/// Clone it freely (an `Addr` and an `Arc` inside) and share it across tasks and threads; there
/// is no need for `Arc<Mutex<_>>`. Every operation is delivered to the hub even if the caller
/// stops awaiting it midway, and the hub handles one caller's operations in the order they were
/// made, so a `get` sees that caller's earlier `store`.
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
    /// What the hub shares with its handles: known from the start for `start` and `spawn`,
    /// learned on first use for `from_addr`. Shared by every clone.
    shared: Arc<OnceLock<Arc<HubShared>>>,
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
    /// non-async code. The thread ends on [`shutdown`](Self::shutdown), or when the last clone
    /// of this handle is dropped.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread (as [`std::thread::spawn`] does).
    pub fn spawn(config: HubConfig) -> HubHandle {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (alive_tx, alive_rx) = watch::channel(());
        let spawned = std::thread::Builder::new()
            .name("resulthub".to_owned())
            .spawn(move || {
                let system = actix_rt::System::new();
                let (addr, shared) = system.block_on(async {
                    let hub = ResultHub::new(config);
                    let shared = hub.shared();
                    (hub.start(), shared)
                });
                if ready_tx
                    .send((addr, shared, actix_rt::System::current()))
                    .is_ok()
                {
                    // `run` drops the runtime, and with it the hub and its records, on return.
                    if let Err(error) = system.run() {
                        tracing::error!(name: "hub.thread", %error, "hub system ended with an error");
                    }
                }
                // Only then does dropping the watch sender tell `shutdown` the thread is done.
                drop(alive_tx);
            });
        let join = match spawned {
            Ok(join) => join,
            Err(error) => panic!("HubHandle::spawn could not start the hub thread: {error}"),
        };
        let (addr, shared, system) = match ready_rx.recv() {
            Ok(ready) => ready,
            Err(_) => panic!("the hub thread ended before starting its hub"),
        };
        let thread = Arc::new(HubThread {
            system,
            alive: alive_rx,
            join: Mutex::new(Some(join)),
        });
        HubHandle::with_shared(addr, shared, Some(thread))
    }

    fn with_shared(
        addr: Addr<ResultHub>,
        shared: Arc<HubShared>,
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
    /// The handle learns the hub's configuration on its first call, and until then waits for
    /// the hub's answer to each store. It does not keep a [`spawn`](Self::spawn)ed hub's thread
    /// alive: that thread ends with the last handle `spawn` returned (or its clones).
    pub fn from_addr(addr: Addr<ResultHub>) -> HubHandle {
        HubHandle {
            addr,
            shared: Arc::new(OnceLock::new()),
            thread: None,
        }
    }

    /// The hub's actix address, for sending [`messages`](crate::messages) directly.
    pub fn addr(&self) -> &Addr<ResultHub> {
        &self.addr
    }

    /// Counts what the hub holds. Changes nothing a caller could observe otherwise: records
    /// past their TTL, which every call drops first, are dropped here too.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn stats(&self) -> Result<HubStats, BackendError> {
        self.call(Stats).await
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
    /// use futures::StreamExt;
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
    /// use futures::StreamExt;
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
        self.call(Subscribe { filter }).await
    }

    /// Every record the hub holds, in the order their ids were first stored: what
    /// [`restore`](Self::restore) takes to rebuild the hub elsewhere or after a restart.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn snapshot(&self) -> Result<Vec<TaskResult>, BackendError> {
        unpack_all(self.call(Dump).await?)
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
        match self.shared.get() {
            // Packed here, on the caller's thread.
            Some(shared) => {
                let records = pack_checked(records, shared)?;
                self.send_change(Load { records }).await
            }
            None => self.call(Restore { records }).await,
        }
    }

    /// Stops the hub for good, after every operation sent before it has been applied.
    ///
    /// Pending `wait_for` calls then end with [`BackendError::Unavailable`], as does every later
    /// call through any handle, a supervised or registry hub included. If
    /// [`spawn`](Self::spawn) made the hub's thread, this also ends and joins it. Calling it
    /// again is harmless.
    pub async fn shutdown(&self) {
        // Closed first, then the message: a store that saw the hub open was queued before it.
        if let Ok(shared) = self.learn_shared().await {
            shared.close();
        }
        // An error means the hub is gone already, which is what was asked.
        let _ = self.addr.send(Shutdown).await;
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
        if let Ok(shared) = self.learn_shared().await {
            shared.close();
        }
        let records = match self.addr.send(Drain).await {
            Ok(records) => records,
            Err(_) => Err(BackendError::hub_stopped()),
        };
        if let Some(thread) = &self.thread {
            thread.stop_and_join().await;
        }
        unpack_all(records?)
    }

    /// The hub's `max_task_id_len`, asked for once if this handle does not know it; `None`
    /// if the hub has stopped.
    #[cfg(feature = "web")]
    pub(crate) async fn max_task_id_len(&self) -> Option<usize> {
        let shared = self.learn_shared().await.ok()?;
        Some(shared.config.max_task_id_len)
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
        let shared = self.learn_shared().await?;
        validate::store(task_id, &result, &shared.config)?;
        let config = &shared.config;
        let at = (config.result_ttl.is_some() || config.pending_ttl.is_some())
            .then(|| config.clock.now());
        // Like an unpipelined store: behind this handle's queued stores, and counted in the
        // read view until applied, so that a `get` meanwhile asks the hub.
        let stored = self.send_change(crate::messages::PutMerged {
            task_id: task_id.to_owned(),
            record: CompactRecord::pack(result),
            at,
        });
        // Unpacked here, on the caller's thread.
        stored.await?.unpack(task_id)
    }

    /// What the hub shares with its handles, asked for once if this handle does not know it.
    async fn learn_shared(&self) -> Result<&Arc<HubShared>, BackendError> {
        if let Some(shared) = self.shared.get() {
            return Ok(shared);
        }
        let shared = self.call(Introduce).await?;
        Ok(self.shared.get_or_init(|| shared))
    }

    /// Sends `message` in an envelope with `do_send`, which actix delivers even if this future
    /// is dropped, and awaits the reply. A hub that is gone drops the envelope, so the reply
    /// channel closes: that is `Unavailable`, never a hang.
    async fn call<M, T>(&self, message: M) -> Result<T, BackendError>
    where
        M: Message<Result = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
        ResultHub: Handler<Envelope<M>>,
    {
        self.send(message).await
    }

    /// Sends `message` at once and returns the reply to await: sending does not wait for the
    /// first poll of a future.
    fn send<M, T>(&self, message: M) -> impl Future<Output = Result<T, BackendError>> + use<M, T>
    where
        M: Message<Result = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
        ResultHub: Handler<Envelope<M>>,
    {
        self.send_envelope(message, false)
    }

    /// `send` for a change the read view does not track: counted in the view until the hub
    /// has handled it, so that a `get` meanwhile asks the hub.
    fn send_change<M, T>(
        &self,
        message: M,
    ) -> impl Future<Output = Result<T, BackendError>> + use<M, T>
    where
        M: Message<Result = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
        ResultHub: Handler<Envelope<M>>,
    {
        let view = self.shared.get().and_then(|shared| shared.view.as_ref());
        if let Some(view) = view {
            view.unseen();
        }
        self.send_envelope(message, view.is_some())
    }

    fn send_envelope<M, T>(
        &self,
        message: M,
        unseen: bool,
    ) -> impl Future<Output = Result<T, BackendError>> + use<M, T>
    where
        M: Message<Result = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
        ResultHub: Handler<Envelope<M>>,
    {
        let (reply, receiver) = oneshot::channel();
        if unseen && !self.addr.connected() {
            // Not delivered: nothing will count it as handled.
            if let Some(view) = self.shared.get().and_then(|shared| shared.view.as_ref()) {
                view.seen();
            }
        }
        self.addr.do_send(Envelope {
            message,
            reply,
            unseen,
        });
        async move {
            receiver
                .await
                .unwrap_or_else(|_| Err(BackendError::hub_stopped()))
        }
    }

    /// The store path. When stores are pipelined (see [`HubConfig::pipeline_stores`]), it
    /// returns once the store is queued, holding one of `MAX_UNACKED_STORES` places until the
    /// hub has applied it; with no place free, or when the hub may refuse the store, it waits
    /// for the hub's answer.
    async fn put(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        let Some(shared) = self.shared.get() else {
            // Queued before anything else is awaited, so it is not lost if this is dropped.
            let stored = self.call(Store {
                task_id: task_id.to_owned(),
                result,
            });
            stored.await?;
            let _ = self.learn_shared().await;
            return Ok(());
        };
        validate::store(task_id, &result, &shared.config)?;
        let record = Arc::new(CompactRecord::pack(result));
        let permit = if !shared.pipelines_stores() || shared.is_closed() {
            None
        } else {
            Arc::clone(&shared.unacked).try_acquire_owned().ok()
        };
        let config = &shared.config;
        let at = (config.result_ttl.is_some() || config.pending_ttl.is_some())
            .then(|| config.clock.now());
        let (permit, view) = match (permit, &shared.view) {
            (Some(permit), Some(view)) => (permit, view),
            (permit, _) => {
                // A hub that may refuse, or no place free: only its answer says.
                let reply = self.send_change(Put {
                    task_id: task_id.to_owned(),
                    record,
                    ticket: None,
                    at,
                    permit,
                });
                return reply.await;
            }
        };
        let mut reply = None;
        view.enqueue(task_id, Arc::clone(&record), at, |ticket| {
            reply = Some(self.send(Put {
                task_id: task_id.to_owned(),
                record,
                ticket: Some(ticket),
                at,
                permit: Some(permit),
            }));
        });
        if shared.is_closed() || !self.addr.connected() {
            // Raced with a shutdown or a dying hub: only the hub's answer says.
            if let Some(reply) = reply {
                return reply.await;
            }
        }
        Ok(())
    }

    /// `get` from the read view, without a message, when there is one: the hub's record with
    /// this handle's queued stores folded in. `None` when the hub keeps no view (its stores
    /// are not pipelined), or is closing, or this handle does not know it yet.
    fn read_view(&self, task_id: &str) -> Option<Result<Option<TaskResult>, BackendError>> {
        let shared = self.shared.get()?;
        let view = shared.view.as_ref()?;
        if shared.is_closed() || !self.addr.connected() {
            return None;
        }
        if let Err(error) = validate::id_length(task_id, &shared.config) {
            return Some(Err(error));
        }
        let record = view.read(task_id, &shared.config).ok()?;
        Some(record.map(|record| record.unpack(task_id)).transpose())
    }
}

fn unpack_all(records: Vec<Keyed>) -> Result<Vec<TaskResult>, BackendError> {
    records
        .into_iter()
        .map(|(id, record)| record.unpack(&id))
        .collect()
}

#[async_trait::async_trait]
impl ResultBackend for HubHandle {
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        self.put(task_id, result).await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        if let Some(read) = self.read_view(task_id) {
            return read;
        }
        let record = self.call(Fetch {
            task_id: task_id.to_owned(),
        });
        // Unpacked here, on the caller's thread.
        record
            .await?
            .map(|record| record.unpack(task_id))
            .transpose()
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        // The timer starts once the hub has answered: it bounds the wait for a future store,
        // not this request's turn in the queue.
        let registered = self.call(Await {
            task_id: task_id.to_owned(),
        });
        match registered.await? {
            Awaited::Ready(record) => record.unpack(task_id),
            Awaited::Waiting(pending) => crate::wait::bounded(task_id, pending, timeout).await,
        }
    }

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        self.send_change(Delete::new(task_id)).await
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        self.send_change(Clear).await
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let page = self.call(Page {
            status,
            limit,
            offset,
        });
        unpack_all(page.await?)
    }
}

/// The thread [`HubHandle::spawn`] started, and how to end it.
#[derive(Debug)]
struct HubThread {
    system: actix_rt::System,
    /// Closes when the thread's System has stopped.
    alive: watch::Receiver<()>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl HubThread {
    async fn stop_and_join(&self) {
        self.system.stop();
        let mut alive = self.alive.clone();
        // Returns Err once the thread dropped its sender, i.e. its System has ended.
        while alive.changed().await.is_ok() {}
        let join = match self.join.lock() {
            Ok(mut join) => join.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(join) = join {
            // The thread has nothing left to do but return, so this join is short; off the
            // async runtime all the same, when there is one.
            let joined = match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || join.join().is_ok())
                    .await
                    .unwrap_or(false),
                Err(_) => join.join().is_ok(),
            };
            if !joined {
                tracing::error!(name: "hub.thread", "the hub thread panicked");
            }
        }
    }
}

impl Drop for HubThread {
    fn drop(&mut self) {
        // The last handle is gone: nobody can reach the hub any more. The thread exits on its
        // own; joining here could block an async runtime.
        self.system.stop();
    }
}
