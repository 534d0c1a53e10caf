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
        /// Which limit, and its value.
        reason: String,
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

impl BackendError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        BackendError::InvalidInput {
            reason: reason.into(),
        }
    }

    pub(crate) fn hub_stopped() -> Self {
        BackendError::Unavailable {
            reason: "the hub has stopped".to_owned(),
        }
    }
}
