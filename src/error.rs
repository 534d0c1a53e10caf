//! The one error type every backend returns.

use std::time::Duration;

/// A boxed error from a storage layer, kept as the [`source`](std::error::Error::source) of
/// [`BackendError::Storage`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`ResultBackend`](crate::ResultBackend) operation failed.
///
/// Every variant leaves the backend unchanged unless its documentation says otherwise: a
/// refused `store` stores nothing, a refused `wait_for` registers nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// `wait_for` saw no terminal store for the task within its timeout.
    #[error("timed out after {timeout:?} waiting for task {task_id:?}")]
    Timeout {
        /// The task that was waited for.
        task_id: String,
        /// How long the caller waited.
        timeout: Duration,
    },
    /// The backend does not implement this operation.
    #[error("{operation} is not supported by this backend")]
    Unsupported {
        /// The operation's name, e.g. `"list_by_status"`.
        operation: &'static str,
    },
    /// The request was malformed; nothing was changed.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong with it.
        reason: String,
        /// The size limit the input is over, when that is what is wrong with it (an id too
        /// long, a record too large or nested too deep); `None` otherwise (an empty id, a
        /// record stored under another id, ...).
        exceeded: Option<Exceeded>,
    },
    /// The backend has stopped or cannot be reached.
    #[error("backend unavailable: {reason}")]
    Unavailable {
        /// Why, e.g. "the hub has stopped".
        reason: String,
    },
    /// A configured limit was hit; nothing was changed.
    #[error("overloaded: {reason}")]
    Overloaded {
        /// Which limit, its value and where the backend stood, in words.
        reason: String,
        /// The same for a program to match on.
        exceeded: Exceeded,
    },
    /// A store was refused because the task's record is terminal already and the hub keeps
    /// the first terminal record ([`TerminalPolicy::KeepFirst`](crate::TerminalPolicy)).
    #[error("task {task_id:?} is already {status}; the first terminal record is kept")]
    Conflict {
        /// The task whose record stays.
        task_id: String,
        /// Its terminal status.
        status: crate::TaskStatus,
    },
    /// The backend hit a bug while handling the call (a handler panicked). The backend keeps
    /// serving; the call may or may not have been applied.
    #[error("internal error: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
    /// The storage layer failed.
    #[error("storage layer failed")]
    Storage(#[source] BoxError),
    /// A record could not be encoded or decoded.
    #[error("record could not be encoded or decoded")]
    Codec(#[source] serde_json::Error),
}

/// A limit a call ran into, as [`BackendError::InvalidInput`] and
/// [`BackendError::Overloaded`] report it.
///
/// # Examples
///
/// ```
/// use resulthub::{BackendError, HubConfig, InMemoryBackend, Limit, ResultBackend, TaskResult, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let backend = InMemoryBackend::new();
/// let long_id = "x".repeat(2000);
/// let refused = backend.store(&long_id, TaskResult::new(&long_id, TaskStatus::Pending)).await;
/// let exceeded = refused.unwrap_err().exceeded().copied().expect("a limit");
/// assert_eq!(exceeded.limit, Limit::MaxTaskIdLen);
/// assert_eq!((exceeded.max, exceeded.actual), (1024, 2000));
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exceeded {
    /// Which limit.
    pub limit: Limit,
    /// Its value.
    pub max: usize,
    /// What the call needed or found, over `max` (or at it, for a count that is full): the
    /// id's length, the record's size, the first nesting level past the limit, the records or
    /// waiters held.
    pub actual: usize,
}

/// Which limit an [`Exceeded`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`HubConfig::max_results`](crate::HubConfig::max_results): records held.
    MaxResults,
    /// [`HubConfig::max_waiters`](crate::HubConfig::max_waiters): `wait_for` calls waiting.
    MaxWaiters,
    /// [`HubConfig::max_task_id_len`](crate::HubConfig::max_task_id_len): an id's length in
    /// bytes.
    MaxTaskIdLen,
    /// [`HubConfig::max_record_bytes`](crate::HubConfig::max_record_bytes): a record's size as
    /// JSON, in bytes.
    MaxRecordBytes,
    /// How deeply a record's JSON values may nest (100 levels, on every backend: deeper
    /// values could be stored but not read back by serde_json or flowrra).
    MaxJsonDepth,
    /// `RedisBackendBuilder::max_store_attempts`: tries of a store whose record other writers
    /// kept changing.
    MaxStoreAttempts,
}

impl BackendError {
    /// The limit this error reports, if it is about one.
    pub fn exceeded(&self) -> Option<&Exceeded> {
        match self {
            BackendError::InvalidInput { exceeded, .. } => exceeded.as_ref(),
            BackendError::Overloaded { exceeded, .. } => Some(exceeded),
            _ => None,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        BackendError::InvalidInput {
            reason: reason.into(),
            exceeded: None,
        }
    }

    /// Input over a size limit.
    pub(crate) fn too_large(limit: Limit, max: usize, actual: usize, reason: String) -> Self {
        BackendError::InvalidInput {
            reason,
            exceeded: Some(Exceeded { limit, max, actual }),
        }
    }

    /// A count at its limit.
    pub(crate) fn overloaded(limit: Limit, max: usize, actual: usize, reason: String) -> Self {
        BackendError::Overloaded {
            reason,
            exceeded: Exceeded { limit, max, actual },
        }
    }

    /// The same error, its reason prefixed with `context` (e.g. which record of a batch).
    pub(crate) fn in_context(self, context: &str) -> Self {
        match self {
            BackendError::InvalidInput { reason, exceeded } => BackendError::InvalidInput {
                reason: format!("{context}: {reason}"),
                exceeded,
            },
            other => other,
        }
    }

    pub(crate) fn hub_stopped() -> Self {
        BackendError::Unavailable {
            reason: "the hub has stopped".to_owned(),
        }
    }
}
