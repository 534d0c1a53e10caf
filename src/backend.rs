//! The trait every result store implements.

use std::time::Duration;

use crate::{BackendError, TaskResult, TaskStatus};

/// A place where workers store task results and callers read and wait for them.
///
/// The trait is object safe: hold any backend as `Arc<dyn ResultBackend>`. Every method returns
/// a `Send` future. Implement it with [`macro@crate::async_trait`]:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use resulthub::{BackendError, ResultBackend, TaskResult};
///
/// /// A backend that stores but cannot wait.
/// #[derive(Default)]
/// struct MapBackend(Mutex<HashMap<String, TaskResult>>);
///
/// #[resulthub::async_trait]
/// impl ResultBackend for MapBackend {
///     async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
///         self.0.lock().unwrap().insert(task_id.to_owned(), result);
///         Ok(())
///     }
///     async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
///         Ok(self.0.lock().unwrap().get(task_id).cloned())
///     }
///     async fn wait_for(&self, task_id: &str, _: Option<Duration>) -> Result<TaskResult, BackendError> {
///         Err(BackendError::Unsupported { operation: "wait_for" })
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let backend: std::sync::Arc<dyn ResultBackend> = std::sync::Arc::new(MapBackend::default());
/// assert!(matches!(backend.clear().await, Err(BackendError::Unsupported { .. })));
/// # });
/// ```
///
/// # The contract
///
/// Every backend of this crate keeps these rules, and the crate's conformance suite checks them:
///
/// - `store` replaces the record, except that `submitted_at`, `task_name`, `args` and `kwargs`
///   describe the task rather than the attempt: left unset (None or empty) in the new record,
///   they keep the previous record's values.
/// - `wait_for` returns at once when the record is already terminal, else waits for the next
///   terminal store of that id, whether or not the id was ever stored.
/// - `list_by_status` orders by `submitted_at`, newest first, records without it last.
#[async_trait::async_trait]
pub trait ResultBackend: Send + Sync {
    /// Stores `result` as the record of `task_id`, replacing any previous one (keeping the
    /// previous task fields the new record leaves unset), and wakes the task's waiters if the
    /// status is terminal.
    ///
    /// # Errors
    ///
    /// A failed store changes nothing.
    /// - [`BackendError::InvalidInput`]: `task_id` is empty, too long, or differs from
    ///   `result.task_id`, or the record is over `max_record_bytes`.
    /// - [`BackendError::Conflict`]: the record is terminal and the backend keeps the first
    ///   terminal record ([`TerminalPolicy::KeepFirst`](crate::TerminalPolicy)).
    /// - [`BackendError::Overloaded`]: at `max_results` with no terminal record to evict.
    /// - [`BackendError::Unavailable`]: the backend has stopped or cannot be reached.
    /// - [`BackendError::Internal`], [`BackendError::Storage`], [`BackendError::Codec`]: the
    ///   backend failed.
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError>;

    /// The record of `task_id`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// [`BackendError::InvalidInput`] for an id over the backend's limit; the backend's own
    /// errors otherwise.
    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError>;

    /// Waits until `task_id` has a terminal record and returns it.
    ///
    /// Returns at once if the record is terminal already, whatever the timeout (zero
    /// included). Otherwise the next terminal store of the id answers, even for an id never
    /// stored before. `timeout` counts from the call; `None` waits without limit, and zero
    /// only asks whether the record is terminal now.
    ///
    /// # Errors
    ///
    /// - [`BackendError::Timeout`]: no terminal store came in time.
    /// - [`BackendError::InvalidInput`]: an empty or too long id.
    /// - [`BackendError::Overloaded`]: `max_waiters` callers are waiting already.
    /// - [`BackendError::Unavailable`]: the backend stopped, or stops while waiting.
    /// - [`BackendError::Unsupported`]: a timeout outside a Tokio runtime with timers (this
    ///   crate's backends use Tokio's timer; `None` and zero work anywhere).
    /// - [`BackendError::Internal`], [`BackendError::Storage`], [`BackendError::Codec`]: the
    ///   backend failed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the wait and leaves nothing registered.
    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError>;

    /// Deletes the record of `task_id`, returning whether there was one. Waiters are not
    /// woken: a later terminal store still answers them.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unsupported`] unless the backend implements it.
    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        let _ = task_id;
        Err(BackendError::Unsupported {
            operation: "delete",
        })
    }

    /// Deletes every record, returning how many there were. Waiters are not woken.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unsupported`] unless the backend implements it.
    async fn clear(&self) -> Result<usize, BackendError> {
        Err(BackendError::Unsupported { operation: "clear" })
    }

    /// The records whose status is `status`, newest `submitted_at` first (records without it
    /// last, ties in the order their ids were first stored), after skipping `offset` and
    /// keeping at most `limit` (`None`: all).
    ///
    /// # Errors
    ///
    /// [`BackendError::Unsupported`] unless the backend implements it.
    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let _ = (status, limit, offset);
        Err(BackendError::Unsupported {
            operation: "list_by_status",
        })
    }
}
