//! What a handle asks of the hub: one operation per public one, with the channel its answer
//! goes to. Handles push these onto the hub's queue ([`Shared`](super::shared::Shared)); the
//! hub applies them in order ([`ResultHub::apply`](super::ResultHub)).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, oneshot};

use super::records::{Fold, SharedRecord};
use crate::compact::CompactRecord;
use crate::events::{Backlog, EventId, RawEvent};
use crate::operations::Carried;
use crate::order::ListKey;
use crate::{BackendError, HubStats, TaskStatus};

/// Where the answer to an operation goes. A hub that stops drops it unanswered, which its
/// receiver reads as [`BackendError::Unavailable`].
pub(crate) type Reply<T> = oneshot::Sender<Result<T, BackendError>>;

/// A record with its id, as listings and snapshots return them.
pub(crate) type Keyed = (Arc<str>, SharedRecord);

#[derive(Debug)]
pub(crate) enum Op {
    Store {
        task_id: Arc<str>,
        record: SharedRecord,
        /// When the caller stored it, when TTLs are set: TTLs count from the call.
        at: Option<Instant>,
        answer: StoreAnswer,
    },
    Get {
        task_id: Arc<str>,
        reply: Reply<Option<SharedRecord>>,
    },
    /// Answered with the terminal record: at once, or when a terminal store comes. With
    /// `poll`, never kept: a record that is not terminal is a `Timeout` at once.
    WaitFor {
        task_id: Arc<str>,
        poll: bool,
        reply: Reply<SharedRecord>,
    },
    /// A waiter of this id gave up: the hub drops the ones whose receiver is gone.
    CancelWait {
        task_id: Arc<str>,
    },
    Delete {
        task_id: Arc<str>,
        reply: Reply<bool>,
    },
    Clear {
        reply: Reply<usize>,
    },
    ListByStatus {
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
        reply: Reply<Vec<Keyed>>,
    },
    /// A page after a position of the listing order, and the position of the next page.
    ListPage {
        status: TaskStatus,
        limit: usize,
        after: Option<ListKey>,
        reply: Reply<(Vec<Keyed>, Option<ListKey>)>,
    },
    Stats {
        reply: Reply<HubStats>,
    },
    Snapshot {
        reply: Reply<Vec<Keyed>>,
    },
    Restore {
        records: Vec<(Arc<str>, CompactRecord)>,
        reply: Reply<usize>,
    },
    /// With `resumable`, the events after `after` still held come first, and the hub holds
    /// its latest events from now on.
    Subscribe {
        resumable: bool,
        after: Option<EventId>,
        reply: Reply<(Backlog, broadcast::Receiver<RawEvent>)>,
    },
    /// Stops the hub for good; with `snapshot`, answers with every record, taken in the same
    /// step.
    Shutdown {
        snapshot: bool,
        reply: Reply<Vec<Keyed>>,
    },
}

/// An operation on the queue, with the span of the call that made it when a subscriber wants
/// that span: the hub applies the operation inside it, so that what the hub logs while
/// applying it belongs to the caller's operation, on whatever thread the hub runs.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) op: Op,
    pub(crate) span: Carried,
}

impl From<Op> for Queued {
    fn from(op: Op) -> Self {
        Queued { op, span: None }
    }
}

/// Who hears how a store went.
#[derive(Debug)]
pub(crate) enum StoreAnswer {
    /// Nobody: the caller returned when it was queued. The record is folded already.
    Pipelined(Fold),
    /// The caller, once applied.
    Done(Reply<()>),
    /// The caller, with the record as stored (task fields merged), for the web front.
    #[cfg(feature = "web")]
    Merged(Reply<SharedRecord>),
}

impl Op {
    /// A change the record map's slots do not track while it is queued (see
    /// [`records`](super::records)).
    pub(crate) fn is_untracked_change(&self) -> bool {
        match self {
            Op::Store { answer, .. } => !matches!(answer, StoreAnswer::Pipelined(_)),
            Op::Delete { .. } | Op::Clear { .. } | Op::Restore { .. } | Op::Shutdown { .. } => true,
            _ => false,
        }
    }
}
