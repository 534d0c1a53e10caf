//! The trait every result store implements.

use std::time::Duration;

use crate::{BackendError, Cursor, Page, TaskResult, TaskStatus};

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

    /// The records of `task_ids`, one entry per id in the order given (`None` where there is
    /// none), as [`get`](Self::get) would return them one by one.
    ///
    /// # Errors
    ///
    /// The first error a `get` of one of the ids returns; [`BackendError::InvalidInput`] for
    /// an empty list.
    async fn get_many(&self, task_ids: &[&str]) -> Result<Vec<Option<TaskResult>>, BackendError> {
        crate::many::non_empty(task_ids, "get_many")?;
        let mut records = Vec::with_capacity(task_ids.len());
        for task_id in task_ids {
            records.push(self.get(task_id).await?);
        }
        Ok(records)
    }

    /// Stores each record under its own `task_id`, in order, as [`store`](Self::store) would
    /// one by one, and returns one outcome per record: a record refused (an invalid one, or
    /// one a limit refuses) fails alone, and the others are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use resulthub::{InMemoryBackend, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let backend = InMemoryBackend::new();
    /// let outcomes = backend
    ///     .store_many(vec![
    ///         TaskResult::new("a", TaskStatus::Pending),
    ///         TaskResult::new("", TaskStatus::Pending), // an empty id is refused
    ///         TaskResult::new("b", TaskStatus::Pending),
    ///     ])
    ///     .await;
    /// assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok());
    /// let records = backend.get_many(&["a", "missing", "b"]).await?;
    /// assert_eq!(records.iter().filter(|record| record.is_some()).count(), 2);
    /// # Ok(())
    /// # }
    /// ```
    async fn store_many(&self, records: Vec<TaskResult>) -> Vec<Result<(), BackendError>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let task_id = record.task_id.clone();
            outcomes.push(self.store(&task_id, record).await);
        }
        outcomes
    }

    /// Waits until every one of `task_ids` has a terminal record, and returns them in the
    /// order given.
    ///
    /// One timeout, counted from the call, bounds the whole batch; each id is waited for as
    /// [`wait_for`](Self::wait_for) waits (ids terminal already count at once), and a zero
    /// timeout only asks whether all of them are terminal now.
    ///
    /// # Examples
    ///
    /// Fan out, then join:
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// let ids: Vec<String> = (0..3).map(|i| format!("job-{i}")).collect();
    /// let workers: Vec<_> = ids
    ///     .iter()
    ///     .map(|id| {
    ///         let (hub, id) = (hub.clone(), id.clone());
    ///         tokio::spawn(async move {
    ///             hub.store(&id, TaskResult::new(&id, TaskStatus::Success)).await
    ///         })
    ///     })
    ///     .collect();
    /// let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    /// let records = hub.wait_for_all(&ids, Some(Duration::from_secs(5))).await?;
    /// assert!(records.iter().all(|record| record.is_success()));
    /// assert_eq!(records[2].task_id, "job-2");
    /// # for worker in workers { worker.await.unwrap()?; }
    /// # hub.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`BackendError::Timeout`]: some ids were still open when the timeout passed; its
    ///   `task_id` names them (the first ten, and how many more).
    /// - [`BackendError::InvalidInput`]: an empty list, or an id `wait_for` refuses.
    /// - Any other error of one id's wait, which ends the batch.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future, or a timeout, drops every wait of the batch: nothing stays
    /// registered.
    async fn wait_for_all(
        &self,
        task_ids: &[&str],
        timeout: Option<Duration>,
    ) -> Result<Vec<TaskResult>, BackendError> {
        crate::many::wait_for_all(self, task_ids, timeout).await
    }

    /// Waits until one of `task_ids` has a terminal record, and returns it: an id terminal
    /// already wins at once (the first such in the order given).
    ///
    /// One timeout, counted from the call, bounds the batch; a zero timeout only asks whether
    /// one of them is terminal now.
    ///
    /// # Errors
    ///
    /// - [`BackendError::Timeout`]: none finished in time; its `task_id` names the ids.
    /// - [`BackendError::InvalidInput`]: an empty list, or an id `wait_for` refuses.
    /// - Any other error of one id's wait.
    ///
    /// # Cancel safety
    ///
    /// On return, and when the future is dropped, every other wait of the batch is dropped:
    /// nothing stays registered.
    async fn wait_for_any(
        &self,
        task_ids: &[&str],
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        crate::many::wait_for_any(self, task_ids, timeout).await
    }

    /// One page of the records whose status is `status`, in the order of
    /// [`list_by_status`](Self::list_by_status): at most `limit` records, starting after the
    /// position `after` (a cursor an earlier page returned; `None`: from the first), and the
    /// cursor of the next page.
    ///
    /// The hub and `InMemoryBackend` page by position: the next page starts right after the
    /// last record returned, however records were added or removed meanwhile, and the hub
    /// finds it in O(log n) whatever its depth. This default, which `RedisBackend` uses, pages
    /// by offset through `list_by_status`: records added or removed before the position shift
    /// the pages after it.
    ///
    /// # Errors
    ///
    /// [`BackendError::InvalidInput`] for a `limit` of zero, or a cursor another backend (or
    /// another kind of backend) made; the backend's own errors otherwise.
    async fn list_page(
        &self,
        status: TaskStatus,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<Page, BackendError> {
        check_page_limit(limit)?;
        let offset = after.map(Cursor::offset).transpose()?.unwrap_or(0);
        let mut records = self
            .list_by_status(status, Some(limit.saturating_add(1)), offset)
            .await?;
        let next = (records.len() > limit).then(|| {
            records.truncate(limit);
            Cursor::after_offset(offset + limit)
        });
        Ok(Page::new(records, next))
    }

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

/// A page needs room for a record: a page of none would return the cursor it was given.
pub(crate) fn check_page_limit(limit: usize) -> Result<(), BackendError> {
    if limit == 0 {
        return Err(BackendError::invalid("a page's limit must be at least 1"));
    }
    Ok(())
}
