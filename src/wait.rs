//! Waiting under a caller's timeout, shared by every backend.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{self, Either};

use crate::{BackendError, TaskResult};

/// Awaits `pending` for at most `timeout` (`None`: without limit). A timeout too large to
/// represent as a deadline (`Duration::MAX`) waits without limit rather than overflowing; a
/// zero timeout polls `pending` once and needs no timer. The timer is Tokio's: outside a Tokio
/// runtime with timers, any other timeout is `Unsupported` rather than a panic.
pub(crate) async fn bounded<F>(
    task_id: &str,
    pending: F,
    timeout: Option<Duration>,
) -> Result<TaskResult, BackendError>
where
    F: Future<Output = Result<TaskResult, BackendError>>,
{
    match within(pending, timeout).await? {
        Some(outcome) => outcome,
        // Dropping `pending` unregistered the waiter.
        None => Err(BackendError::Timeout {
            task_id: task_id.to_owned(),
            timeout: timeout.unwrap_or_default(),
        }),
    }
}

/// Awaits `pending` for at most `timeout`, as [`bounded`] does: `Ok(None)` when the timeout
/// passed first (`pending` is dropped by then), `Unsupported` when there is no timer to use.
pub(crate) async fn within<F: Future>(
    pending: F,
    timeout: Option<Duration>,
) -> Result<Option<F::Output>, BackendError> {
    let Some(timeout) = timeout else {
        return Ok(Some(pending.await));
    };
    if timeout.is_zero() {
        return Ok(pending.now_or_never());
    }
    let Some(deadline) = tokio::time::Instant::now().checked_add(timeout) else {
        return Ok(Some(pending.await));
    };
    // Tokio panics when asked for a timer it does not have: no runtime, or one built without
    // `enable_time`. That is a caller's setup, not a reason to crash it.
    let sleep = match tokio::runtime::Handle::try_current() {
        Ok(_) => panic::catch_unwind(AssertUnwindSafe(|| tokio::time::sleep_until(deadline))).ok(),
        Err(_) => None,
    };
    let Some(sleep) = sleep else {
        return Err(BackendError::Unsupported {
            operation: "wait_for with a timeout outside a Tokio runtime with timers enabled",
        });
    };
    let sleep = std::pin::pin!(sleep);
    let pending = std::pin::pin!(pending);
    match future::select(pending, sleep).await {
        Either::Left((outcome, _)) => Ok(Some(outcome)),
        Either::Right(_) => Ok(None),
    }
}
