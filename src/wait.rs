//! Waiting under a caller's timeout, shared by every backend.

use std::future::Future;
use std::time::Duration;

use crate::{BackendError, TaskResult};

/// Awaits `pending` for at most `timeout` (`None`: without limit). A timeout too large to
/// represent as a deadline (`Duration::MAX`) waits without limit rather than overflowing.
pub(crate) async fn bounded<F>(
    task_id: &str,
    pending: F,
    timeout: Option<Duration>,
) -> Result<TaskResult, BackendError>
where
    F: Future<Output = Result<TaskResult, BackendError>>,
{
    let Some(timeout) = timeout else {
        return pending.await;
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(BackendError::Unsupported {
            operation: "wait_for with a timeout outside a Tokio runtime",
        });
    }
    let Some(deadline) = tokio::time::Instant::now().checked_add(timeout) else {
        return pending.await;
    };
    match tokio::time::timeout_at(deadline, pending).await {
        Ok(outcome) => outcome,
        // Dropping `pending` here has already unregistered the waiter.
        Err(_) => Err(BackendError::Timeout {
            task_id: task_id.to_owned(),
            timeout,
        }),
    }
}
