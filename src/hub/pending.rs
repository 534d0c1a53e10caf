//! The caller's side of a registered waiter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::ops::Op;
use super::records::SharedRecord;
use super::shared::Shared;
use crate::{BackendError, TaskResult};

/// A waiter registered with the hub: resolves to the task's next terminal record.
///
/// Dropping it before it resolves (a timeout, a cancelled request) tells the hub to forget the
/// waiter, so nothing is left behind. It resolves to [`BackendError::Unavailable`] if the hub
/// stops first.
///
/// # Cancel safety
///
/// Cancel safe: dropping it unregisters the waiter and loses nothing stored.
#[derive(Debug)]
#[must_use = "a PendingWait does nothing unless awaited; dropping it unregisters the waiter"]
pub struct PendingWait {
    task_id: Arc<str>,
    receiver: oneshot::Receiver<Result<SharedRecord, BackendError>>,
    /// The queue to cancel through; `None` once resolved: nothing is left to cancel.
    hub: Option<Arc<Shared>>,
}

impl PendingWait {
    pub(crate) fn new(
        task_id: Arc<str>,
        receiver: oneshot::Receiver<Result<SharedRecord, BackendError>>,
        hub: Arc<Shared>,
    ) -> Self {
        PendingWait {
            task_id,
            receiver,
            hub: Some(hub),
        }
    }

    /// The task this waiter waits for.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }
}

impl Future for PendingWait {
    type Output = Result<TaskResult, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let outcome = futures_util::ready!(Pin::new(&mut this.receiver).poll(cx));
        // Answered or dropped by the hub: either way the hub holds no entry any more.
        this.hub = None;
        // Unpacked here, on the waiting caller's thread, not on the hub's.
        Poll::Ready(match outcome {
            Ok(Ok(record)) => Ok(record.unpack(&this.task_id)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(BackendError::hub_stopped()),
        })
    }
}

impl Drop for PendingWait {
    fn drop(&mut self) {
        let Some(hub) = self.hub.take() else {
            return;
        };
        // Answered meanwhile, or the hub is gone: nothing to cancel.
        self.receiver.close();
        if self.receiver.try_recv().is_err() && !hub.is_closed() {
            let cancel = Op::CancelWait {
                task_id: Arc::clone(&self.task_id),
            };
            let _ = hub.push(cancel, None);
        }
    }
}
