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

use std::sync::Arc;
use std::time::Instant;

use actix::Message;
use tokio::sync::OwnedSemaphorePermit;

use crate::compact::CompactRecord;
use crate::events::{EventFilter, EventStream};
use crate::hub::HubShared;
use crate::hub::state::{Keyed, SharedRecord};
use crate::{BackendError, HubStats, TaskResult, TaskStatus};

pub use crate::hub::pending::PendingWait;

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

/// Stops the hub for good: its records are dropped, pending waits end with
/// [`BackendError::Unavailable`], and every later message is answered with it. A supervised
/// hub stays stopped across the supervisor's restart. The hub marks itself closed when it
/// handles this, then stops after every store queued before the mark; it replies then.
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

/// Removes a waiter whose caller gave up; sent by [`PendingWait`]'s `Drop`.
#[derive(Debug)]
pub(crate) struct CancelWait {
    pub(crate) task_id: Arc<str>,
    pub(crate) waiter_id: u64,
}

impl Message for CancelWait {
    type Result = ();
}

/// A message together with the oneshot its reply goes to. Sent with `do_send`, which actix
/// always delivers, unlike a `send` whose caller dropped the future before the hub got to it.
pub(crate) struct Envelope<M: Message> {
    pub(crate) message: M,
    pub(crate) reply: tokio::sync::oneshot::Sender<M::Result>,
    /// A change the read view does not see coming: counted in the view until handled, so that
    /// `get` asks the hub meanwhile.
    pub(crate) unseen: bool,
}

impl<M: Message> Message for Envelope<M> {
    type Result = ();
}

// The handle's own messages: records travel packed, and are packed and unpacked on the
// caller's thread, so the hub's one thread does no JSON work.

/// Stores a record the handle has validated and packed.
#[derive(Debug)]
pub(crate) struct Put {
    pub(crate) task_id: String,
    /// Shared with the read view while the store is queued.
    pub(crate) record: Arc<CompactRecord>,
    /// The read view's note of this store, for a pipelined one.
    pub(crate) ticket: Option<u64>,
    /// When the caller stored it, when TTLs are set: a pipelined store may be applied later,
    /// and its TTL counts from the call.
    pub(crate) at: Option<Instant>,
    /// Held while the store is queued: bounds the stores sent without waiting for the hub.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl Message for Put {
    type Result = Result<(), BackendError>;
}

/// Stores a record the handle has validated and packed, and answers with the record as stored
/// (task fields merged from the previous one), read in the same step: no other change can
/// come between. Never pipelined.
#[cfg(feature = "web")]
#[derive(Debug)]
pub(crate) struct PutMerged {
    pub(crate) task_id: String,
    pub(crate) record: CompactRecord,
    /// When the caller stored it, when TTLs are set, as for [`Put`].
    pub(crate) at: Option<Instant>,
}

#[cfg(feature = "web")]
impl Message for PutMerged {
    type Result = Result<SharedRecord, BackendError>;
}

/// Reads one record, packed.
#[derive(Debug)]
pub(crate) struct Fetch {
    pub(crate) task_id: String,
}

impl Message for Fetch {
    type Result = Result<Option<SharedRecord>, BackendError>;
}

/// Registers a waiter; a terminal record comes back packed.
#[derive(Debug)]
pub(crate) struct Await {
    pub(crate) task_id: String,
}

/// The hub's answer to [`Await`].
#[derive(Debug)]
pub(crate) enum Awaited {
    Ready(SharedRecord),
    Waiting(PendingWait),
}

impl Message for Await {
    type Result = Result<Awaited, BackendError>;
}

/// Lists a page, packed.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: TaskStatus,
    pub(crate) limit: Option<usize>,
    pub(crate) offset: usize,
}

impl Message for Page {
    type Result = Result<Vec<Keyed>, BackendError>;
}

/// Every record, packed, in first-store order.
#[derive(Debug)]
pub(crate) struct Dump;

impl Message for Dump {
    type Result = Result<Vec<Keyed>, BackendError>;
}

/// Restores packed records.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) records: Vec<(String, CompactRecord)>,
}

impl Message for Load {
    type Result = Result<usize, BackendError>;
}

/// Asks the hub for what its handles share with it.
#[derive(Debug)]
pub(crate) struct Introduce;

impl Message for Introduce {
    type Result = Result<Arc<HubShared>, BackendError>;
}

/// Takes every record, packed, and shuts the hub down in the same step: no store can land
/// between the two.
#[derive(Debug)]
pub(crate) struct Drain;

impl Message for Drain {
    type Result = Result<Vec<Keyed>, BackendError>;
}

/// The second step of a shutdown, queued by the hub to itself behind every store that saw it
/// open.
#[derive(Debug)]
pub(crate) struct FinalStop {
    pub(crate) drain: bool,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Vec<Keyed>, BackendError>>,
}

impl Message for FinalStop {
    type Result = ();
}
