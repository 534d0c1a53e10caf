//! The actor's message handlers: each routes to one `HubState` operation.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use actix::{ActorContext, AsyncContext, Context, Handler};

use super::ResultHub;
use super::state::{HubState, Registration};
use crate::messages::{
    CancelWait, Clear, Delete, Envelope, Get, ListByStatus, PendingWait, Restore, Shutdown,
    Snapshot, Stats, Store, WaitFor, WaitOutcome,
};
use crate::{BackendError, HubStats, TaskResult};

impl ResultHub {
    /// Runs one state change, turning a panic into an error for this caller only: the state's
    /// derived structures are rebuilt and the hub keeps serving, where an unguarded panic
    /// would kill the actor for good.
    pub(super) fn with_state<T>(
        &mut self,
        operation: &'static str,
        change: impl FnOnce(&mut HubState) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let state = self.state.as_mut().ok_or_else(BackendError::hub_stopped)?;
        match panic::catch_unwind(AssertUnwindSafe(|| change(state))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let reason = panic_message(payload.as_ref());
                tracing::error!(
                    name: "hub.panic",
                    operation,
                    reason = %reason,
                    "a hub handler panicked; state repaired, the hub keeps serving"
                );
                state.repair();
                Err(BackendError::Internal {
                    reason: format!("the hub's {operation} handler panicked: {reason}"),
                })
            }
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
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
    Snapshot,
    Restore,
    Shutdown
);

impl Handler<Store> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, msg: Store, _: &mut Context<Self>) -> Self::Result {
        let status = msg.result.status;
        let outcome = self.with_state("store", |state| state.store(&msg.task_id, msg.result));
        tracing::debug!(name: "hub.store", task_id = %msg.task_id, status = ?status, ok = outcome.is_ok());
        outcome
    }
}

impl Handler<Get> for ResultHub {
    type Result = Result<Option<TaskResult>, BackendError>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.get", task_id = %msg.task_id);
        self.with_state("get", |state| state.get(&msg.task_id))
    }
}

impl Handler<WaitFor> for ResultHub {
    type Result = Result<WaitOutcome, BackendError>;

    fn handle(&mut self, msg: WaitFor, ctx: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.wait_for", task_id = %msg.task_id);
        match self.with_state("wait_for", |state| state.register_waiter(&msg.task_id))? {
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
        let _ = self.with_state("cancel_wait", |state| {
            state.cancel_waiter(&msg.task_id, msg.waiter_id);
            Ok(())
        });
    }
}

impl Handler<Delete> for ResultHub {
    type Result = Result<bool, BackendError>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.delete", task_id = %msg.task_id);
        self.with_state("delete", |state| state.delete(&msg.task_id))
    }
}

impl Handler<Clear> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, _: Clear, _: &mut Context<Self>) -> Self::Result {
        let removed = self.with_state("clear", |state| Ok(state.clear()))?;
        tracing::debug!(name: "hub.clear", removed);
        Ok(removed)
    }
}

impl Handler<ListByStatus> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, msg: ListByStatus, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.list_by_status", status = ?msg.status, limit = ?msg.limit, offset = msg.offset);
        self.with_state("list_by_status", |state| {
            Ok(state.list_by_status(msg.status, msg.limit, msg.offset))
        })
    }
}

impl Handler<Stats> for ResultHub {
    type Result = Result<HubStats, BackendError>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        self.with_state("stats", |state| Ok(state.stats()))
    }
}

impl Handler<Snapshot> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        let records = self.with_state("snapshot", |state| Ok(state.snapshot()))?;
        tracing::debug!(name: "hub.snapshot", records = records.len());
        Ok(records)
    }
}

impl Handler<Restore> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, msg: Restore, _: &mut Context<Self>) -> Self::Result {
        let outcome = self.with_state("restore", |state| state.restore(msg.records));
        tracing::debug!(name: "hub.restore", ok = outcome.is_ok());
        outcome
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

#[cfg(feature = "fault-injection")]
impl Handler<crate::testing::InjectFault> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: crate::testing::InjectFault, _: &mut Context<Self>) {
        if let Some(state) = self.state.as_mut() {
            state.fault = Some(msg.operation);
        }
    }
}
