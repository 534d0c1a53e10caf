//! The cloneable handle callers use: [`ResultBackend`] over messages to the hub.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::{Actor, Addr, Handler, Message};
use tokio::sync::{oneshot, watch};

use crate::messages::{
    Clear, Delete, Envelope, Get, ListByStatus, Restore, Shutdown, Snapshot, Stats, Store, WaitFor,
    WaitOutcome,
};
use crate::{BackendError, HubConfig, HubStats, ResultBackend, ResultHub, TaskResult, TaskStatus};

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
        HubHandle::from_addr(ResultHub::new(config).start())
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
                let addr = system.block_on(async { ResultHub::new(config).start() });
                if ready_tx.send((addr, actix_rt::System::current())).is_ok() {
                    if let Err(error) = system.run() {
                        tracing::error!(name: "hub.thread", %error, "hub system ended with an error");
                    }
                }
                // Dropping the watch sender tells `shutdown` the System has ended.
                drop(alive_tx);
            });
        let join = match spawned {
            Ok(join) => join,
            Err(error) => panic!("HubHandle::spawn could not start the hub thread: {error}"),
        };
        let (addr, system) = match ready_rx.recv() {
            Ok(ready) => ready,
            Err(_) => panic!("the hub thread ended before starting its hub"),
        };
        HubHandle {
            addr,
            thread: Some(Arc::new(HubThread {
                system,
                alive: alive_rx,
                join: Mutex::new(Some(join)),
            })),
        }
    }

    /// A handle to a hub that actix code started itself (under a supervisor, from the
    /// registry, ...).
    pub fn from_addr(addr: Addr<ResultHub>) -> HubHandle {
        HubHandle { addr, thread: None }
    }

    /// The hub's actix address, for sending [`messages`](crate::messages) directly.
    pub fn addr(&self) -> &Addr<ResultHub> {
        &self.addr
    }

    /// Counts what the hub holds. A pure read.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn stats(&self) -> Result<HubStats, BackendError> {
        self.call(Stats).await
    }

    /// Every record the hub holds, in the order their ids were first stored: what
    /// [`restore`](Self::restore) takes to rebuild the hub elsewhere or after a restart.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] if the hub has stopped.
    pub async fn snapshot(&self) -> Result<Vec<TaskResult>, BackendError> {
        self.call(Snapshot).await
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
        self.call(Restore { records }).await
    }

    /// Stops the hub for good, after every operation sent before it has been applied.
    ///
    /// Pending `wait_for` calls then end with [`BackendError::Unavailable`], as does every later
    /// call through any handle, a supervised or registry hub included. If
    /// [`spawn`](Self::spawn) made the hub's thread, this also ends and joins it. Calling it
    /// again is harmless.
    pub async fn shutdown(&self) {
        // An error means the hub is gone already, which is what was asked.
        let _ = self.call(Shutdown).await;
        if let Some(thread) = &self.thread {
            thread.stop_and_join().await;
        }
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
        let (reply, receiver) = oneshot::channel();
        self.addr.do_send(Envelope { message, reply });
        receiver
            .await
            .unwrap_or_else(|_| Err(BackendError::hub_stopped()))
    }
}

#[async_trait::async_trait]
impl ResultBackend for HubHandle {
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        self.call(Store {
            task_id: task_id.to_owned(),
            result,
        })
        .await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        self.call(Get::new(task_id)).await
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        // The timer starts once the hub has answered: it bounds the wait for a future store,
        // not this request's turn in the queue.
        match self.call(WaitFor::new(task_id)).await? {
            WaitOutcome::Ready(record) => Ok(record),
            WaitOutcome::Waiting(pending) => crate::wait::bounded(task_id, pending, timeout).await,
        }
    }

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        self.call(Delete::new(task_id)).await
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        self.call(Clear).await
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        self.call(ListByStatus {
            status,
            limit,
            offset,
        })
        .await
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
            // The thread has nothing left to do but exit, so this join is immediate.
            if join.join().is_err() {
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
