//! The actor's message handlers: each routes to one `HubState` operation.

use actix::{ActorContext, AsyncContext, Context, Handler};

use super::ResultHub;
use super::state::{HubState, Registration};
use crate::messages::{
    CancelWait, Clear, Delete, Envelope, Get, ListByStatus, PendingWait, Shutdown, Stats, Store,
    WaitFor, WaitOutcome,
};
use crate::{BackendError, HubStats, TaskResult};

impl ResultHub {
    fn open(&mut self) -> Result<&mut HubState, BackendError> {
        self.state.as_mut().ok_or_else(BackendError::hub_stopped)
    }
}

/// Each operation in an [`Envelope`] is handled as the bare message, its reply sent to the
/// envelope's oneshot. The caller may have given up; for a `PendingWait` reply, dropping it
/// here cancels the waiter it stands for.
macro_rules! handle_enveloped {
    ($($message:ty),* $(,)?) => {$(
        impl Handler<Envelope<$message>> for ResultHub {
            type Result = ();

            fn handle(&mut self, envelope: Envelope<$message>, ctx: &mut Context<Self>) {
                let reply = <Self as Handler<$message>>::handle(self, envelope.message, ctx);
                let _ = envelope.reply.send(reply);
            }
        }
    )*};
}

handle_enveloped!(
    Store,
    Get,
    WaitFor,
    Delete,
    Clear,
    ListByStatus,
    Stats,
    Shutdown
);

impl Handler<Store> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, msg: Store, _: &mut Context<Self>) -> Self::Result {
        let status = msg.result.status;
        let outcome = self.open()?.store(&msg.task_id, msg.result);
        tracing::debug!(name: "hub.store", task_id = %msg.task_id, status = ?status, ok = outcome.is_ok());
        outcome
    }
}

impl Handler<Get> for ResultHub {
    type Result = Result<Option<TaskResult>, BackendError>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.get", task_id = %msg.task_id);
        self.open()?.get(&msg.task_id)
    }
}

impl Handler<WaitFor> for ResultHub {
    type Result = Result<WaitOutcome, BackendError>;

    fn handle(&mut self, msg: WaitFor, ctx: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.wait_for", task_id = %msg.task_id);
        match self.open()?.register_waiter(&msg.task_id)? {
            Registration::Ready(record) => Ok(WaitOutcome::Ready(record)),
            Registration::Waiting {
                waiter_id,
                receiver,
            } => Ok(WaitOutcome::Waiting(PendingWait::new(
                msg.task_id,
                waiter_id,
                receiver,
                ctx.address().recipient(),
            ))),
        }
    }
}

impl Handler<CancelWait> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: CancelWait, _: &mut Context<Self>) {
        tracing::debug!(name: "hub.cancel_wait", task_id = %msg.task_id);
        if let Ok(state) = self.open() {
            state.cancel_waiter(&msg.task_id, msg.waiter_id);
        }
    }
}

impl Handler<Delete> for ResultHub {
    type Result = Result<bool, BackendError>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.delete", task_id = %msg.task_id);
        self.open()?.delete(&msg.task_id)
    }
}

impl Handler<Clear> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, _: Clear, _: &mut Context<Self>) -> Self::Result {
        let removed = self.open()?.clear();
        tracing::debug!(name: "hub.clear", removed);
        Ok(removed)
    }
}

impl Handler<ListByStatus> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, msg: ListByStatus, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.list_by_status", status = ?msg.status, limit = ?msg.limit, offset = msg.offset);
        Ok(self
            .open()?
            .list_by_status(msg.status, msg.limit, msg.offset))
    }
}

impl Handler<Stats> for ResultHub {
    type Result = Result<HubStats, BackendError>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        Ok(self.open()?.stats())
    }
}

impl Handler<Shutdown> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.shutdown", open = self.state.is_some());
        // Dropping the state drops every waiter's sender: pending waits end with Unavailable.
        self.state = None;
        // A supervisor restarts a stopped actor; with no state it stays inert and answers
        // Unavailable, which is what "stopped for good" means to its callers.
        ctx.stop();
        Ok(())
    }
}

impl Handler<crate::testing::StopHub> for ResultHub {
    type Result = ();

    fn handle(&mut self, _: crate::testing::StopHub, ctx: &mut Context<Self>) {
        tracing::warn!(name: "hub.stop_for_test", "stopping the hub's context on request");
        ctx.stop();
    }
}
