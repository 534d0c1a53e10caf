//! One actix message per hub operation, for actix code that talks to the
//! [`ResultHub`](crate::ResultHub) through its `Addr` directly.
//!
//! Most code should use a [`HubHandle`](crate::HubHandle) instead: it implements
//! [`ResultBackend`](crate::ResultBackend), applies timeouts, and delivers every mutation even
//! if the caller stops awaiting it. With a bare `Addr`, remember that actix skips a `send` whose
//! caller dropped the future before the hub handled it; use `do_send` where that matters.
//!
//! # Examples
//!
//! ```
//! use resulthub::messages::{Get, Store, WaitFor, WaitOutcome};
//! use resulthub::{HubConfig, ResultHub, TaskResult, TaskStatus};
//! use actix::Actor;
//!
//! # actix_rt::System::new().block_on(async {
//! let hub = ResultHub::new(HubConfig::default()).start();
//! let WaitOutcome::Waiting(pending) = hub.send(WaitFor::new("t1")).await.unwrap().unwrap() else {
//!     unreachable!("nothing is stored yet");
//! };
//! hub.send(Store::new(TaskResult::new("t1", TaskStatus::Success))).await.unwrap().unwrap();
//! let record = pending.await.unwrap();
//! assert!(record.is_success());
//! assert_eq!(hub.send(Get::new("t1")).await.unwrap().unwrap(), Some(record));
//! # });
//! ```

use actix::Message;

use crate::events::{EventFilter, EventStream};
use crate::{BackendError, Cursor, HubStats, Page, TaskResult, TaskStatus};

pub use super::pending::PendingWait;

/// Stores a record under its own `task_id`. Replies like
/// [`ResultBackend::store`](crate::ResultBackend::store).
#[derive(Debug)]
pub struct Store {
    /// The id to store under; must equal `result.task_id`.
    pub task_id: String,
    /// The record.
    pub result: TaskResult,
}

impl Store {
    /// Stores `result` under `result.task_id`.
    pub fn new(result: TaskResult) -> Self {
        Store {
            task_id: result.task_id.clone(),
            result,
        }
    }
}

impl Message for Store {
    type Result = Result<(), BackendError>;
}

/// Reads one record. Replies like [`ResultBackend::get`](crate::ResultBackend::get).
#[derive(Debug)]
pub struct Get {
    /// The id to read.
    pub task_id: String,
}

impl Get {
    /// Reads the record of `task_id`.
    pub fn new(task_id: impl Into<String>) -> Self {
        Get {
            task_id: task_id.into(),
        }
    }
}

impl Message for Get {
    type Result = Result<Option<TaskResult>, BackendError>;
}

/// Reads several records in one message: one entry per id, in the order given. Replies like
/// [`ResultBackend::get_many`](crate::ResultBackend::get_many).
///
/// # Examples
///
/// ```
/// use actix::Actor;
/// use resulthub::messages::{GetMany, StoreMany};
/// use resulthub::{HubConfig, ResultHub, TaskResult, TaskStatus};
///
/// # actix_rt::System::new().block_on(async {
/// let hub = ResultHub::new(HubConfig::default()).start();
/// let outcomes = hub
///     .send(StoreMany::new(vec![
///         TaskResult::new("a", TaskStatus::Success),
///         TaskResult::new("b", TaskStatus::Failed),
///     ]))
///     .await
///     .unwrap();
/// assert!(outcomes.iter().all(Result::is_ok));
/// let records = hub.send(GetMany::new(["b", "nope", "a"])).await.unwrap().unwrap();
/// let statuses: Vec<_> = records.iter().map(|r| r.as_ref().map(|r| r.status)).collect();
/// assert_eq!(statuses, [Some(TaskStatus::Failed), None, Some(TaskStatus::Success)]);
/// # });
/// ```
#[derive(Debug)]
pub struct GetMany {
    /// The ids to read; at least one.
    pub task_ids: Vec<String>,
}

impl GetMany {
    /// Reads the records of `task_ids`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(task_ids: I) -> Self {
        GetMany {
            task_ids: task_ids.into_iter().map(Into::into).collect(),
        }
    }
}

impl Message for GetMany {
    type Result = Result<Vec<Option<TaskResult>>, BackendError>;
}

/// Stores several records in one message, each under its own `task_id`, in order: one outcome
/// per record, and a bad record fails alone. Replies like
/// [`ResultBackend::store_many`](crate::ResultBackend::store_many); [`GetMany`] shows both.
#[derive(Debug)]
pub struct StoreMany {
    /// The records, stored in this order.
    pub records: Vec<TaskResult>,
}

impl StoreMany {
    /// Stores `records` in order.
    pub fn new(records: Vec<TaskResult>) -> Self {
        StoreMany { records }
    }
}

impl Message for StoreMany {
    type Result = Vec<Result<(), BackendError>>;
}

/// Registers interest in the next terminal record of a task, or answers at once if it is
/// terminal already. The hub never waits: the caller awaits the returned [`PendingWait`].
#[derive(Debug)]
pub struct WaitFor {
    /// The id to wait for; it need not have been stored yet.
    pub task_id: String,
}

impl WaitFor {
    /// Waits for `task_id`.
    pub fn new(task_id: impl Into<String>) -> Self {
        WaitFor {
            task_id: task_id.into(),
        }
    }
}

impl Message for WaitFor {
    type Result = Result<WaitOutcome, BackendError>;
}

/// The hub's answer to [`WaitFor`].
// Built once per wait and moved straight out; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum WaitOutcome {
    /// The record was terminal when the hub handled the request.
    Ready(TaskResult),
    /// A waiter is registered; await it (under your own timeout) for the record.
    Waiting(PendingWait),
}

/// Deletes one record. Replies like [`ResultBackend::delete`](crate::ResultBackend::delete).
#[derive(Debug)]
pub struct Delete {
    /// The id to delete.
    pub task_id: String,
}

impl Delete {
    /// Deletes the record of `task_id`.
    pub fn new(task_id: impl Into<String>) -> Self {
        Delete {
            task_id: task_id.into(),
        }
    }
}

impl Message for Delete {
    type Result = Result<bool, BackendError>;
}

/// Deletes every record. Replies like [`ResultBackend::clear`](crate::ResultBackend::clear).
#[derive(Debug, Default)]
pub struct Clear;

impl Message for Clear {
    type Result = Result<usize, BackendError>;
}

/// Lists a page of one status. Replies like
/// [`ResultBackend::list_by_status`](crate::ResultBackend::list_by_status).
#[derive(Debug)]
pub struct ListByStatus {
    /// The status to list.
    pub status: TaskStatus,
    /// At most this many records; `None` for all.
    pub limit: Option<usize>,
    /// How many records to skip first.
    pub offset: usize,
}

impl Message for ListByStatus {
    type Result = Result<Vec<TaskResult>, BackendError>;
}

/// Lists one page of a status after a cursor. Replies like
/// [`ResultBackend::list_page`](crate::ResultBackend::list_page).
#[derive(Debug)]
pub struct ListPage {
    /// The status to list.
    pub status: TaskStatus,
    /// At most this many records; at least 1.
    pub limit: usize,
    /// Where the page starts: the `next` of an earlier page; `None` for the first page.
    pub after: Option<Cursor>,
}

impl Message for ListPage {
    type Result = Result<Page, BackendError>;
}

/// Counts what the hub holds.
#[derive(Debug, Default)]
pub struct Stats;

impl Message for Stats {
    type Result = Result<HubStats, BackendError>;
}

/// Returns every record, in the order their ids were first stored. Replies like
/// [`HubHandle::snapshot`](crate::HubHandle::snapshot).
#[derive(Debug, Default)]
pub struct Snapshot;

impl Message for Snapshot {
    type Result = Result<Vec<TaskResult>, BackendError>;
}

/// Stores records in the given order, all or none. Replies like
/// [`HubHandle::restore`](crate::HubHandle::restore).
#[derive(Debug)]
pub struct Restore {
    /// The records, each stored under its own `task_id`.
    pub records: Vec<TaskResult>,
}

impl Message for Restore {
    type Result = Result<usize, BackendError>;
}

/// Stops the hub for good, after every operation queued before it: its records are dropped,
/// pending waits end with [`BackendError::Unavailable`], and every later message is answered
/// with it. A supervised hub stays stopped across the supervisor's restart.
#[derive(Debug, Default)]
pub struct Shutdown;

impl Message for Shutdown {
    type Result = Result<(), BackendError>;
}

/// Subscribes to the events of every change the hub applies after handling this message.
/// Replies like [`HubHandle::subscribe_with`](crate::HubHandle::subscribe_with).
#[derive(Debug, Default)]
pub struct Subscribe {
    /// Which events the stream yields.
    pub filter: EventFilter,
}

impl Message for Subscribe {
    type Result = Result<EventStream, BackendError>;
}
